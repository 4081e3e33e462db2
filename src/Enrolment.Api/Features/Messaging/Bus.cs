using Enrolment.Api.Features.Completions;
using Enrolment.Contracts;
using Wolverine;
using Wolverine.ErrorHandling;
using Wolverine.Postgresql;
using Wolverine.RabbitMQ;

namespace Enrolment.Api.Features.Messaging;

public sealed class BusSettings
{
    /// <summary>"postgresql" (the embedded default: queues in the service's own database) or "rabbitmq".</summary>
    public string Transport { get; set; } = "postgresql";
    public PostgresqlBusSettings Postgresql { get; set; } = new();
    public RabbitMqBusSettings RabbitMq { get; set; } = new();
}

public sealed class PostgresqlBusSettings
{
    public string EventsQueue { get; set; } = "enrolment_events";
    public string CompletionsQueue { get; set; } = "enrolment_completions";
}

public sealed class RabbitMqBusSettings
{
    public string Uri { get; set; } = "amqp://guest:guest@127.0.0.1:5672";
    /// <summary>Topic exchange every integration event is published to, routing key = the message's event type.</summary>
    public string Exchange { get; set; } = "enrolment.events";
    /// <summary>A queue the service binds to every event ("#"), so the events can be read without writing a consumer.</summary>
    public string AllEventsQueue { get; set; } = "enrolment.events.all";
    public string CompletionsQueue { get; set; } = "enrolment.completions";
    public string CompletionsDeadLetterQueue { get; set; } = "enrolment.completions.dead-letter";
}

/// <summary>
/// Where integration events go and completions come from. Integration events are written in the transaction of their
/// change whichever the transport (<see cref="IntegrationEventQueue"/>: rows of the PostgreSQL queue, or Wolverine's
/// durable outbox for RabbitMQ), so they are sent if and only if their change committed.
/// </summary>
public static class Bus
{
    public const string StatusChangedRoutingKey = "enrolment.status-changed.v1";
    public const string ReminderRecordedRoutingKey = "enrolment.reminder-recorded.v1";

    /// <summary>
    /// Where integration events are written: on the PostgreSQL transport straight into the events queue's table (in the
    /// change's transaction), on RabbitMQ through Wolverine's outbox. Registered as a service by the area's configuration
    /// (a Wolverine extension may not register services).
    /// </summary>
    public static IntegrationEventQueue Queue(IServiceProvider services, BusSettings settings)
    {
        var runtime = services.GetRequiredService<Wolverine.Runtime.IWolverineRuntime>();
        var webhooks = services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Webhooks.WebhookSettings>>().Value.Enabled;
        if (!settings.Transport.Equals("postgresql", StringComparison.OrdinalIgnoreCase)) return new IntegrationEventQueue(null, null, runtime, webhooks);
        var transport = runtime.Options.Transports.GetOrCreate<Wolverine.Postgresql.Transport.PostgresqlTransport>();
        return new IntegrationEventQueue($"{transport.TransportSchemaName}.wolverine_queue_{settings.Postgresql.EventsQueue}",
            new Uri($"postgresql://{settings.Postgresql.EventsQueue}/"), runtime, webhooks);
    }

    public static void Configure(WolverineOptions opts, BusSettings settings)
    {
        // A message that can never succeed goes to the dead-letter queue at once; nothing of it was written.
        opts.OnException<InvalidMessageException>().MoveToErrorQueue();
        opts.Policies.UseDurableOutboxOnAllSendingEndpoints();

        switch (settings.Transport.ToLowerInvariant())
        {
            case "postgresql":
            {
                // The events queue is declared (so Wolverine creates and migrates its table) but not routed to: the
                // service writes its rows in each change's own transaction, set-based (IntegrationEventQueue).
                var transport = opts.Transports.GetOrCreate<Wolverine.Postgresql.Transport.PostgresqlTransport>();
                _ = transport.Queues[settings.Postgresql.EventsQueue];
                opts.ListenToPostgresqlQueue(settings.Postgresql.CompletionsQueue).DefaultIncomingMessage<RecordCompletion>();
                break;
            }

            case "rabbitmq":
                var rabbit = settings.RabbitMq;
                opts.UseRabbitMq(new Uri(rabbit.Uri))
                    .AutoProvision()
                    .DeclareExchange(rabbit.Exchange, ex =>
                    {
                        ex.ExchangeType = ExchangeType.Topic;
                        ex.BindQueue(rabbit.AllEventsQueue, "#");
                    });
                opts.PublishMessage<EnrolmentStatusChanged>().ToRabbitRoutingKey(rabbit.Exchange, StatusChangedRoutingKey, ex => ex.ExchangeType = ExchangeType.Topic);
                opts.PublishMessage<EnrolmentReminderRecorded>().ToRabbitRoutingKey(rabbit.Exchange, ReminderRecordedRoutingKey, ex => ex.ExchangeType = ExchangeType.Topic);
                opts.ListenToRabbitQueue(rabbit.CompletionsQueue)
                    .DefaultIncomingMessage<RecordCompletion>()
                    .DeadLetterQueueing(new DeadLetterQueue(rabbit.CompletionsDeadLetterQueue))
                    .UseDurableInbox();
                break;

            default:
                throw new InvalidOperationException($"Bus:Transport is '{settings.Transport}'; use 'postgresql' (the default) or 'rabbitmq'.");
        }
        // Whatever the transport, every integration event also goes to the durable local queue "webhooks", where webhook
        // deliveries are recorded: the Webhooks area's Configuration.cs (RouteToRecorder).
    }
}
