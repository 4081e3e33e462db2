using System.Diagnostics;
using System.Text.Json;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Contracts;
using Marten;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using NodaTime;
using Wolverine;

namespace Enrolment.Api.Features.Webhooks;

/// <summary>
/// Every integration event also reaches the durable local queue "webhooks" (Infrastructure/Bus.cs), handled here: one
/// pending delivery per subscription of the tenant that wants its event type, written in the transaction that marks the
/// message handled. So an event is recorded for delivery if and only if its change committed, and nothing is lost in a crash.
/// Disabled subscriptions get deliveries too: enabling one delivers what it missed.
/// </summary>
/// <remarks>
/// In order per enrolment: version N is recorded only once version N-1's message has left the inbox. Wolverine alone does
/// not keep that order: a killed node's messages wait in the inbox until another node declares it dead (about a minute) and
/// are then recovered in no particular order, while later versions arrive fresh; and under a burst (a 150-user fan-out
/// followed by completions, in the reliability run) versions 2 were handled before versions 1 on a healthy node too, as a
/// back-pressured durable queue leaves messages to the inbox's recovery. Each message's inbox id is derived from (tenant, enrolment, version) (<see cref="InboxId"/>), so the
/// predecessor is found by id. While it waits, this message is rescheduled in the inbox (not failed: nothing is logged as
/// an error, no retry budget runs out). The sender then keeps the order of what is recorded (WebhookDeliveries.Claim).
/// </remarks>
public static class RecordWebhookDeliveriesHandler
{
    public const string Queue = "webhooks";

    /// <summary>The webhook eventType of <see cref="EnrolmentReminderRecorded"/>.</summary>
    public const string ReminderEventType = "enrolment.reminded";

    /// <summary>A predecessor still in the inbox after this long is worth a warning: its node may have died unnoticed.</summary>
    private static readonly TimeSpan WaitWorthAWarning = TimeSpan.FromMinutes(10);

    public static Task Handle(EnrolmentStatusChanged message, IDocumentSession session, WebhookSubscriptionCache subscriptions, WolverineInbox inbox,
        IMessageContext context, IClock clock, ILogger<EnrolmentStatusChanged> logger, CancellationToken ct) =>
        Record(session, subscriptions, inbox, context, clock, logger, message.TenantId, message.EnrolmentId, message.StreamVersion, message.EventType, message.MessageId, message, ct);

    public static Task Handle(EnrolmentReminderRecorded message, IDocumentSession session, WebhookSubscriptionCache subscriptions, WolverineInbox inbox,
        IMessageContext context, IClock clock, ILogger<EnrolmentReminderRecorded> logger, CancellationToken ct) =>
        Record(session, subscriptions, inbox, context, clock, logger, message.TenantId, message.EnrolmentId, message.StreamVersion, ReminderEventType, message.MessageId, message, ct);

    /// <summary>The id of the inbox envelope that carries an integration event to this queue (set when it is sent, WebhooksSetup).</summary>
    public static Guid InboxId(Guid messageId) => WebhookDeliveries.NameBasedId($"webhook-inbox\n{messageId:N}");

    private static async Task Record<T>(IDocumentSession session, WebhookSubscriptionCache subscriptions, WolverineInbox inbox, IMessageContext context,
        IClock clock, ILogger logger, string tenantId, Guid enrolmentId, long streamVersion, string eventType, Guid messageId, T message, CancellationToken ct)
    {
        // Checked whether or not this tenant has subscriptions now: the order argument is a chain from version to version.
        if (streamVersion > 1 && await inbox.IsWaiting(tenantId, InboxId(IntegrationEvents.MessageId(tenantId, enrolmentId, streamVersion - 1)), ct))
        {
            await WaitForPredecessor(context, logger, tenantId, enrolmentId, streamVersion);
            return;
        }
        var wanting = (await subscriptions.ForTenant(session, tenantId, ct)).Where(s => s.Wants(eventType)).ToList();
        if (wanting.Count == 0) return;
        // The bus's own JSON of the contract (the same settings Wolverine serialises with), so a webhook body equals the bus body.
        var body = JsonSerializer.Serialize(message, Json.Options);
        var now = clock.GetCurrentInstant();
        var traceParent = Activity.Current?.Id ?? "";
        foreach (var subscription in wanting)
            WebhookDeliveries.Record(session, subscription.Id, tenantId, enrolmentId, streamVersion, eventType, messageId, typeof(T).FullName!, body, now, traceParent);
    }

    /// <summary>Back in the inbox for a while, growing with the wait (a quarter of it, 0.5 to 5 s): quick after a race, calm during a recovery.</summary>
    private static async Task WaitForPredecessor(IMessageContext context, ILogger logger, string tenantId, Guid enrolmentId, long streamVersion)
    {
        var waited = context.Envelope?.SentAt is { } sent && sent > DateTimeOffset.MinValue ? DateTimeOffset.UtcNow - sent : TimeSpan.Zero;
        var pause = TimeSpan.FromMilliseconds(Math.Clamp(waited.TotalMilliseconds / 4, 500, 5000));
        if (waited > WaitWorthAWarning)
            logger.LogWarning("Webhook deliveries of enrolment {EnrolmentId} (tenant {TenantId}) version {Version} have waited {Waited} for version {Previous}, " +
                              "which is still unhandled in Wolverine's inbox (a node that died is normally detected within a minute or two). " +
                              "Look for its envelope in wolverine_incoming_envelopes and for stale rows in wolverine_nodes; later versions of this enrolment wait behind it.",
                enrolmentId, tenantId, streamVersion, waited, streamVersion - 1);
        else
            logger.LogDebug("Webhook deliveries of enrolment {EnrolmentId} version {Version} wait for version {Previous}; looking again in {Pause}.",
                enrolmentId, streamVersion, streamVersion - 1, pause);
        await context.ReScheduleCurrentAsync(DateTimeOffset.UtcNow + pause);
    }
}

/// <summary>
/// The tenant's subscriptions, read at most every Webhooks:SubscriptionCacheTime per node: every integration event asks, and
/// most tenants have none. Changes made through this node are seen at once; other nodes see them within that time.
/// </summary>
public sealed class WebhookSubscriptionCache(IMemoryCache cache, IOptions<WebhookSettings> settings)
{
    public async Task<IReadOnlyList<WebhookSubscription>> ForTenant(IQuerySession session, string tenantId, CancellationToken ct)
    {
        if (cache.TryGetValue(Key(tenantId), out IReadOnlyList<WebhookSubscription>? found)) return found!;
        var subscriptions = await session.Query<WebhookSubscription>().Where(s => s.TenantId == tenantId).ToListAsync(ct);
        cache.Set(Key(tenantId), (IReadOnlyList<WebhookSubscription>)subscriptions, settings.Value.SubscriptionCacheTime);
        return subscriptions;
    }

    public void Changed(string tenantId) => cache.Remove(Key(tenantId));

    private static string Key(string tenantId) => "webhooks:" + tenantId;
}
