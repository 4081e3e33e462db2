using System.Globalization;
using System.Threading.RateLimiting;
using Enrolment.Api.Infrastructure.Auth;

namespace Enrolment.Api.Infrastructure;

/// <summary>
/// The per-tenant request limit (a token bucket per tenant, refilled every second), held here so that the rate
/// limiter middleware and the headers that report it read the same buckets.
/// </summary>
public sealed class TenantRateLimit
{
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(1);

    public TenantRateLimit(int permitsPerSecond)
    {
        PermitsPerSecond = permitsPerSecond;
        Limiter = PartitionedRateLimiter.Create<HttpContext, string>(ctx =>
        {
            var tenant = Tenant(ctx);
            return tenant is null
                ? RateLimitPartition.GetNoLimiter("anonymous")
                : RateLimitPartition.GetTokenBucketLimiter(tenant, _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = permitsPerSecond, TokensPerPeriod = permitsPerSecond, ReplenishmentPeriod = Period,
                    QueueLimit = 0, AutoReplenishment = true,
                });
        });
    }

    public int PermitsPerSecond { get; }
    public PartitionedRateLimiter<HttpContext> Limiter { get; }

    public static string? Tenant(HttpContext ctx) => ctx.User.FindFirst(BasicAuthenticationHandler.TenantClaim)?.Value;
}

/// <summary>Routes whose clients also read <c>X-RateLimit-*</c> (reset in milliseconds): the Mimecast area adds its route.</summary>
public sealed class RateLimitHeaderOptions
{
    public List<PathString> MillisecondResetPaths { get; } = [];
}

/// <summary>
/// Every authenticated answer tells the client its limit before it hits it: <c>RateLimit-Limit</c>,
/// <c>RateLimit-Remaining</c> and <c>RateLimit-Reset</c> (seconds; IETF httpapi draft), and on the routes of
/// <see cref="RateLimitHeaderOptions"/> (Mimecast's) also <c>X-RateLimit-*</c> (reset in milliseconds). Reset is the bucket's refill period, an upper bound: the
/// bucket refills whole once a second.
/// </summary>
public static class RateLimitHeaders
{
    /// <summary>After authentication (the tenant is known) and before the limiter (so its 429 answers carry them too).</summary>
    public static void UseRateLimitHeaders(this WebApplication app)
    {
        var limit = app.Services.GetRequiredService<TenantRateLimit>();
        var millisecondPaths = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<RateLimitHeaderOptions>>().Value.MillisecondResetPaths.ToArray();
        app.Use((context, next) =>
        {
            if (TenantRateLimit.Tenant(context) is not null)
                context.Response.OnStarting(() =>
                {
                    var remaining = limit.Limiter.GetStatistics(context)?.CurrentAvailablePermits ?? limit.PermitsPerSecond;
                    var headers = context.Response.Headers;
                    var reset = (int)Math.Ceiling(TenantRateLimit.Period.TotalSeconds);
                    headers["RateLimit-Limit"] = limit.PermitsPerSecond.ToString(CultureInfo.InvariantCulture);
                    headers["RateLimit-Remaining"] = Math.Max(0, remaining).ToString(CultureInfo.InvariantCulture);
                    headers["RateLimit-Reset"] = reset.ToString(CultureInfo.InvariantCulture);
                    headers["RateLimit-Policy"] = FormattableString.Invariant($"{limit.PermitsPerSecond};w={reset}");
                    if (millisecondPaths.Any(p => context.Request.Path.StartsWithSegments(p, StringComparison.OrdinalIgnoreCase)))
                    {
                        headers["X-RateLimit-Limit"] = headers["RateLimit-Limit"];
                        headers["X-RateLimit-Remaining"] = headers["RateLimit-Remaining"];
                        headers["X-RateLimit-Reset"] = ((long)TenantRateLimit.Period.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
                    }
                    return Task.CompletedTask;
                });
            return next(context);
        });
    }
}
