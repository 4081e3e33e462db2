using Enrolment.Api.Infrastructure.Production;
using Wolverine;

namespace Enrolment.Api.Features.Messaging;

/// <summary>
/// The message bus (PRODUCT.md, "Message bus"): the transport from Bus:Transport, where integration events go and
/// completions come from (<see cref="Bus"/>), and the production check on RabbitMQ's published default account.
/// </summary>
public static class MessagingConfiguration
{
    public static void AddMessaging(this WebApplicationBuilder builder)
    {
        var settings = Settings(builder.Configuration);
        builder.Services.ConfigureWolverine(opts => Bus.Configure(opts, settings));
        builder.Services.AddSingleton(sp => Bus.Queue(sp, settings));
        builder.Services.AddPublishedDefaultsRule(GuestAccountOnAnotherMachine);
    }

    public static BusSettings Settings(IConfiguration configuration) => configuration.GetSection("Bus").Get<BusSettings>() ?? new BusSettings();

    /// <summary>RabbitMQ's guest:guest is refused for a broker on another machine (outside Development).</summary>
    public static IEnumerable<string> GuestAccountOnAnotherMachine(IConfiguration configuration)
    {
        var bus = Settings(configuration);
        if (bus.Transport.Equals("rabbitmq", StringComparison.OrdinalIgnoreCase) && Uri.TryCreate(bus.RabbitMq.Uri, UriKind.Absolute, out var amqp)
            && Uri.UnescapeDataString(amqp.UserInfo) == "guest:guest" && !PublishedDefaults.IsLoopback(amqp.Host))
            yield return $"Bus:RabbitMq:Uri signs in to {amqp.Host} as RabbitMQ's default guest:guest. Create a RabbitMQ user for the service and set it in Bus__RabbitMq__Uri " +
                         "(amqp://user:password@host:5672).";
    }
}
