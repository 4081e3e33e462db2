using System.Text.Json.Serialization;
using Enrolment.Api.Infrastructure;
using Marten;
using NodaTime;

namespace Enrolment.Api.Features.Webhooks;

/// <summary>
/// A tenant's webhook: where deliveries go and which event types it wants. Stored outside any tenant (single-tenanted,
/// with its tenant as a field) so the one sender of the service can read every tenant's active subscriptions in one query.
/// The signing secret is kept sealed (AES-256-GCM), never in clear: the service needs it back to sign each delivery.
/// </summary>
public sealed class WebhookSubscription
{
    public Guid Id { get; set; }
    public string TenantId { get; set; } = "";
    public string Url { get; set; } = "";
    /// <summary>The eventType values delivered; null = every event type, including ones added later.</summary>
    public string[]? EventTypes { get; set; }
    public WebhookStatus Status { get; set; } = WebhookStatus.Active;
    public string? DisabledReason { get; set; }
    public Instant? DisabledAt { get; set; }
    public Instant CreatedAt { get; set; }
    /// <summary>nonce ‖ ciphertext ‖ tag of the secret's UTF-8 bytes; the associated data is the subscription id.</summary>
    public byte[] SealedSecret { get; set; } = [];

    public bool Wants(string eventType) => EventTypes is null || EventTypes.Contains(eventType, StringComparer.Ordinal);
}

/// <summary>In JSON (answers and the stored subscription) camelCase: "active", or "disabled" after failing for Webhooks:DisableAfter.</summary>
public enum WebhookStatus { Active, Disabled }

/// <summary>The eventLog eventType values a webhook may ask for (PRODUCT.md, "One event, one message").</summary>
public static class WebhookEventTypes
{
    public static readonly string[] Known = [.. Domain.EnrolmentEvents.EventTypes];
}

/// <summary>A subscription as the API shows it. <see cref="Secret"/> is only set in the answer to POST /webhooks.</summary>
public sealed record WebhookView(
    Guid Id, string Url, string[]? EventTypes, WebhookStatus Status, string? DisabledReason, Instant? DisabledAt, Instant CreatedAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Secret = null)
{
    public static WebhookView Of(WebhookSubscription s, string? secret = null) =>
        new(s.Id, s.Url, s.EventTypes, s.Status, s.DisabledReason, s.DisabledAt, s.CreatedAt, secret);
}

public sealed record WebhookList(IReadOnlyList<WebhookView> Items);

public static class WebhookLookup
{
    /// <summary>The tenant's subscription named in the route, or the 422 (malformed id) / 404 (none in this tenant) to answer.</summary>
    public static async Task<(WebhookSubscription? Subscription, IResult? Problem)> Find(IQuerySession session, string webhookId, CancellationToken ct)
    {
        if (!RouteIds.TryGuid(webhookId, "webhookId", out var id, out var invalid)) return (null, invalid);
        var subscription = await session.LoadAsync<WebhookSubscription>(id, ct);
        // Another tenant's webhook is a 404 too: tenants never learn of each other's ids.
        return subscription is null || subscription.TenantId != session.TenantId
            ? (null, Problems.NotFound($"There is no webhook {webhookId}."))
            : (subscription, null);
    }
}
