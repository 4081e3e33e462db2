using Enrolment.Api.Infrastructure;
using System.Diagnostics;
using System.Text.Json;
using Enrolment.Api.Features.Webhooks;
using Enrolment.Contracts;
using Marten;
using Wolverine;
using Wolverine.Runtime;
using Wolverine.Runtime.Serialization;
using Wolverine.Util;

namespace Enrolment.Api.Features.Messaging;

/// <summary>
/// Where integration events go, in the transaction of the change that caused them.
///
/// On RabbitMQ: Wolverine's outbox (an outgoing envelope per event in the transaction, sent after the commit).
/// On the embedded PostgreSQL transport the destination queue is a table in the service's own database, so the events
/// are written straight into it, in the change's own transaction and set-based (one statement per save, however many
/// events): the rows Wolverine's outbox would otherwise move there after the commit one message per statement and commit
/// (about 400 a second on the benchmark machine, which made a 100,000-enrolment deadline wait minutes for its bus).
/// Each row is the envelope Wolverine itself writes (its binary envelope format, the message as the bus's JSON, the
/// tenant-id header), with the event's own <c>messageId</c> as the envelope id, so a row written twice is one row.
/// The webhook recorder's durable local queue is fed through Wolverine on both transports, with only the events a webhook
/// subscription of the tenant wants (<see cref="WebhookSubscriptionCache"/>).
/// </summary>
public sealed class IntegrationEventQueue
{
    /// <summary>Traces the writes of the embedded queue's rows (Infrastructure/Telemetry/Tracing.cs).</summary>
    public static readonly ActivitySource Source = new("Enrolment.Api.IntegrationEvents");

    private readonly string? _insertSql;
    private readonly Uri? _destination;
    private readonly string _serviceName;
    private readonly IWolverineRuntime _runtime;
    private readonly bool _webhooks;

    /// <param name="queueTable">The PostgreSQL queue's table (schema-qualified), or null when the bus is RabbitMQ.</param>
    /// <param name="destination">The queue's Wolverine address (postgresql://name/), written into each envelope.</param>
    /// <param name="webhooks">Whether webhooks are on (Webhooks:Enabled): the recorder's queue exists.</param>
    public IntegrationEventQueue(string? queueTable, Uri? destination, IWolverineRuntime runtime, bool webhooks)
    {
        _webhooks = webhooks;
        _destination = destination;
        _runtime = runtime;
        _serviceName = runtime.Options.ServiceName;
        // The listener takes rows in "timestamp" order, whose default (now()) is one instant for the whole transaction:
        // one microsecond apart in the order given, so two versions of one enrolment in one save keep their order.
        _insertSql = queueTable is null ? null :
            $"insert into {queueTable} (id, body, message_type, \"timestamp\") " +
            "select m.id, m.body, m.message_type, now() + make_interval(secs => m.n / 1000000.0) " +
            "from unnest(?::uuid[], ?::bytea[], ?::varchar[]) with ordinality as m(id, body, message_type, n) on conflict (id) do nothing";
    }

    /// <summary>The host's writer, found through the bus of the unit of work (each host has its own transport settings).</summary>
    public static IntegrationEventQueue Of(IMessageBus bus) => bus switch
    {
        MessageBus b => b.Runtime.Services.GetRequiredService<IntegrationEventQueue>(),
        _ => throw new InvalidOperationException($"Integration events need Wolverine's own message bus, not {bus.GetType().Name}."),
    };

    /// <summary>
    /// The integration events of one unit of work into its transaction: queue rows (embedded transport) in one statement
    /// or outbox rows (RabbitMQ), and the ones a webhook subscription wants to the webhook recorder's queue.
    /// </summary>
    public async ValueTask Write(IDocumentSession session, IMessageBus bus, IReadOnlyList<object> messages)
    {
        if (messages.Count == 0) return;
        if (_insertSql is not null)
        {
            // The producer span of the trace (Wolverine's own send span is gone with its send): the envelopes carry it
            // as their parent, so a consumer's handling joins the change's trace.
            using var span = Source.StartActivity($"{_destination!.Host} publish", ActivityKind.Producer);
            span?.SetTag("messaging.system", "postgresql");
            span?.SetTag("messaging.operation.type", "publish");
            span?.SetTag("messaging.destination.name", _destination.Host);
            span?.SetTag("messaging.batch.message_count", messages.Count);
            span?.SetTag("messaging.message.type", string.Join(",", messages.Select(m => m.GetType().FullName).Distinct()));
            var ids = new Guid[messages.Count];
            var bodies = new byte[messages.Count][];
            var types = new string[messages.Count];
            var sentAt = DateTimeOffset.UtcNow;
            var parent = Activity.Current?.Id;
            for (var i = 0; i < messages.Count; i++)
            {
                var message = messages[i];
                var envelope = new Envelope(message)
                {
                    Id = MessageIdOf(message),
                    MessageType = message.GetType().ToMessageTypeName(),
                    ContentType = "application/json",
                    Data = JsonSerializer.SerializeToUtf8Bytes(message, message.GetType(), Json.Options),
                    TenantId = session.TenantId,
                    CorrelationId = (bus as MessageBus)?.CorrelationId ?? Activity.Current?.RootId,
                    Source = _serviceName,
                    Destination = _destination,
                    SentAt = sentAt,
                    ParentId = parent,
                };
                envelope.ConversationId = envelope.Id;
                ids[i] = envelope.Id;
                bodies[i] = EnvelopeSerializer.Serialize(envelope);
                types[i] = envelope.MessageType;
            }
            session.QueueSqlCommand(_insertSql, ids, bodies, types);
        }
        if (!_webhooks)
        {
            // Only the broker's routes (RabbitMQ); on the embedded transport nothing is routed at all.
            if (_insertSql is null) foreach (var message in messages) await bus.PublishAsync(message);
            return;
        }
        var subscriptions = await _runtime.Services.GetRequiredService<WebhookSubscriptionCache>().ForTenant(session, session.TenantId, CancellationToken.None);
        foreach (var message in messages)
        {
            // Wolverine's publishing rules route an integration event to the webhook recorder's durable local queue and,
            // on RabbitMQ, to the broker (through the outbox). An event no webhook of the tenant wants must not enter the
            // recorder's queue: it would record nothing, and after a deadline that is 100,000 inbox rows and handler
            // runs (on RabbitMQ that made the burst 4x slower). Such an event goes to the broker's endpoint alone, or
            // nowhere on the embedded transport, whose queue rows are written above. The recorder's order check passes
            // over a version that was never sent.
            if (subscriptions.Any(s => s.Wants(EventTypeOf(message)))) await bus.PublishAsync(message);
            else if (_insertSql is null) await bus.EndpointFor(BrokerEndpoint(message)).SendAsync(message, new DeliveryOptions { TenantId = session.TenantId });
        }
    }

    /// <summary>The RabbitMQ endpoint an integration event's publishing rule routes it to (Bus.Configure).</summary>
    private Uri BrokerEndpoint(object message) => _brokerEndpoints.GetOrAdd(message.GetType(), type =>
        _runtime.RoutingFor(type).Routes.OfType<Wolverine.Runtime.Routing.MessageRoute>().Select(r => r.Uri).SingleOrDefault(u => u.Scheme != "local")
        ?? throw new InvalidOperationException($"No broker route for {type.Name}: Bus.Configure publishes integration events to RabbitMQ."));

    private readonly System.Collections.Concurrent.ConcurrentDictionary<Type, Uri> _brokerEndpoints = new();

    private static string EventTypeOf(object message) => message switch
    {
        EnrolmentStatusChanged m => m.EventType,
        EnrolmentReminderRecorded => RecordWebhookDeliveriesHandler.ReminderEventType,
        _ => throw new ArgumentException($"{message.GetType().Name} is not an integration event of this service.", nameof(message)),
    };

    private static Guid MessageIdOf(object message) => message switch
    {
        EnrolmentStatusChanged m => m.MessageId,
        EnrolmentReminderRecorded m => m.MessageId,
        _ => throw new ArgumentException($"{message.GetType().Name} is not an integration event of this service.", nameof(message)),
    };
}
