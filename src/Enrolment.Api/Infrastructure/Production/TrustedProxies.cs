using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.HttpOverrides;

namespace Enrolment.Api.Infrastructure.Production;

/// <summary>The "Proxies" configuration section: which peers may say who the client is.</summary>
public sealed class ProxySettings
{
    /// <summary>Addresses of reverse proxies / load balancers whose X-Forwarded-For and X-Forwarded-Proto are believed.</summary>
    public string[] KnownProxies { get; set; } = [];

    /// <summary>Networks in CIDR notation (10.0.0.0/8, fd00::/8) whose peers are believed, for proxies without fixed addresses.</summary>
    public string[] KnownNetworks { get; set; } = [];

    /// <summary>How many proxies deep to unwrap X-Forwarded-For, each of which must be trusted (1: one load balancer).</summary>
    public int ForwardLimit { get; set; } = 1;

    public bool TrustsAnyone => KnownProxies.Length > 0 || KnownNetworks.Length > 0;
}

/// <summary>
/// ASP.NET Core's forwarded-headers middleware, trusting only the configured proxies. Behind a trusted proxy the
/// connection's remote address becomes the client's (brute-force counting, rate limits, logs and traces read it from
/// there); a peer that is not trusted is taken as the client, whatever X-Forwarded-For it sends.
/// </summary>
public static class TrustedProxies
{
    public static void AddTrustedProxies(this IServiceCollection services, IConfiguration configuration)
    {
        var settings = configuration.GetSection("Proxies").Get<ProxySettings>() ?? new ProxySettings();
        services.AddSingleton(settings);
        services.Configure<ForwardedHeadersOptions>(o =>
        {
            o.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            o.ForwardLimit = Math.Max(1, settings.ForwardLimit);
            // ASP.NET Core trusts loopback by default; here only what the configuration names. (With both lists empty the
            // middleware would trust everyone, which is why it is not in the pipeline at all then.)
            o.KnownProxies.Clear();
            o.KnownIPNetworks.Clear();
            foreach (var proxy in settings.KnownProxies)
                o.KnownProxies.Add(IPAddress.TryParse(proxy.Trim(), out var ip) ? ip
                    : throw new InvalidOperationException($"Proxies:KnownProxies contains '{proxy}', which is not an IP address (for a range use Proxies:KnownNetworks, e.g. 10.0.0.0/8)."));
            foreach (var network in settings.KnownNetworks)
                o.KnownIPNetworks.Add(System.Net.IPNetwork.TryParse(network.Trim(), out var range) ? range
                    : throw new InvalidOperationException($"Proxies:KnownNetworks contains '{network}', which is not a network in CIDR notation (e.g. 10.0.0.0/8 or fd00::/8)."));
        });
    }

    /// <summary>First in the pipeline, so that everything after it sees the client's address.</summary>
    public static void UseTrustedProxies(this WebApplication app)
    {
        if (!app.Services.GetRequiredService<ProxySettings>().TrustsAnyone) return;
        app.UseForwardedHeaders();
        // The HTTP server span was started before this middleware ran: give it the client's address too.
        app.Use((context, next) =>
        {
            if (Activity.Current is { } span && context.Connection.RemoteIpAddress is { } client)
                span.SetTag("client.address", client.ToString());
            return next(context);
        });
    }
}
