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
/// The webhook recorder's durable local queue is fed through Wolverine as before (<see cref="IMessageBus.PublishAsync{T}"/>
/// routes the integration events only there on this transport: <see cref="Bus.Configure"/>), and on this transport only
/// with the events a webhook subscription of the tenant wants (<see cref="WebhookSubscriptionCache"/>).
/// </summary>
public sealed class IntegrationEventQueue
{
    /// <summary>Traces the writes of the embedded queue's rows (Infrastructure/Telemetry/Tracing.cs).</summary>
    public static readonly ActivitySource Source = new("Enrolment.Api.IntegrationEvents");

    private readonly string? _insertSql;
    private readonly Uri? _destination;
    private readonly string _serviceName;
    private readonly IWolverineRuntime _runtime;
    private bool? _routed;

    /// <param name="queueTable">The PostgreSQL queue's table (schema-qualified), or null when the bus is RabbitMQ.</param>
    /// <param name="destination">The queue's Wolverine address (postgresql://name/), written into each envelope.</param>
    public IntegrationEventQueue(string? queueTable, Uri? destination, IWolverineRuntime runtime)
    {
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

    /// <summary>Whether Wolverine routes integration events anywhere (on the embedded transport only the webhook queue, when webhooks are on).</summary>
    private bool Routed => _routed ??= _runtime.RoutingFor(typeof(EnrolmentStatusChanged)).Routes.Length > 0;

    /// <summary>
    /// The integration events of one unit of work into its transaction: queue rows (embedded transport) in one statement,
    /// and every event to Wolverine's routes (the webhook queue; on RabbitMQ also the broker, through the outbox).
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
        if (_insertSql is null)
        {
            foreach (var message in messages) await bus.PublishAsync(message);
            return;
        }
        // Here Wolverine routes them only to the webhook recorder's queue: only what a subscription of the tenant wants
        // goes there, since the recorder would record nothing for the rest (each a durable inbox row and a handler run;
        // 100,000 of them after a deadline). Its order check passes over a version that was never sent.
        if (!Routed) return;
        var subscriptions = await _runtime.Services.GetRequiredService<WebhookSubscriptionCache>().ForTenant(session, session.TenantId, CancellationToken.None);
        if (subscriptions.Count == 0) return;
        foreach (var message in messages)
            if (subscriptions.Any(s => s.Wants(EventTypeOf(message)))) await bus.PublishAsync(message);
    }

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
