using System.Diagnostics;
using System.Text.Json;
using Enrolment.Api.Infrastructure;
using Enrolment.Contracts;
using Marten;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using NodaTime;

namespace Enrolment.Api.Features.Webhooks;

/// <summary>
/// Every integration event also reaches the durable local queue "webhooks" (Infrastructure/Bus.cs), handled here: one
/// pending delivery per subscription of the tenant that wants its event type, written in the transaction that marks the
/// message handled. So an event is recorded for delivery if and only if its change committed, and nothing is lost in a crash.
/// Disabled subscriptions get deliveries too: enabling one delivers what it missed.
/// </summary>
public static class RecordWebhookDeliveriesHandler
{
    public const string Queue = "webhooks";

    public static Task Handle(EnrolmentStatusChanged message, IDocumentSession session, WebhookSubscriptionCache subscriptions, IClock clock, CancellationToken ct) =>
        Record(session, subscriptions, clock, message.TenantId, message.EnrolmentId, message.StreamVersion, message.EventType, message.MessageId, message, ct);

    public static Task Handle(EnrolmentReminderRecorded message, IDocumentSession session, WebhookSubscriptionCache subscriptions, IClock clock, CancellationToken ct) =>
        Record(session, subscriptions, clock, message.TenantId, message.EnrolmentId, message.StreamVersion, "enrolment.reminded", message.MessageId, message, ct);

    private static async Task Record<T>(IDocumentSession session, WebhookSubscriptionCache subscriptions, IClock clock, string tenantId, Guid enrolmentId,
        long streamVersion, string eventType, Guid messageId, T message, CancellationToken ct)
    {
        var wanting = (await subscriptions.ForTenant(session, tenantId, ct)).Where(s => s.Wants(eventType)).ToList();
        if (wanting.Count == 0) return;
        // The bus's own JSON of the contract (the same settings Wolverine serialises with), so a webhook body equals the bus body.
        var body = JsonSerializer.Serialize(message, Json.Options);
        var now = clock.GetCurrentInstant();
        var traceParent = Activity.Current?.Id ?? "";
        foreach (var subscription in wanting)
            WebhookDeliveries.Record(session, subscription.Id, tenantId, enrolmentId, streamVersion, eventType, messageId, typeof(T).FullName!, body, now, traceParent);
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
