using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using NodaTime;
using Wolverine.Http;

namespace Enrolment.Api.Features.Webhooks;

// EventTypes defaults to null, so the OpenAPI document marks it optional (omitted: every event type).
public sealed record CreateWebhookRequest(string? Url, string[]? EventTypes = null);

public static class CreateWebhookEndpoint
{
    public const int MaxWebhooksPerTenant = 20;

    [ProducesResponseType<WebhookView>(StatusCodes.Status201Created), ProducesResponseType(StatusCodes.Status422UnprocessableEntity)]
    [WolverinePost("/webhooks", OperationId = "createWebhook"), Authorize(Policy = AuthPolicies.Webhooks)]
    [Tags("Webhooks")]
    [EndpointSummary("Subscribe an https endpoint to the tenant's enrolment events (eventTypes omitted: all). The answer carries the signing secret, shown only this once.")]
    public static async Task<IResult> Post(CreateWebhookRequest? request, IDocumentSession session, WebhookSecrets secrets, WebhookSubscriptionCache cache,
        IOptions<WebhookSettings> settings, IClock clock, CancellationToken ct)
    {
        if (request is null) return Problems.Validation("body", "The body must be a JSON object: { \"url\": \"https://…\", \"eventTypes\": [\"enrolment.completed\"] }.");
        var errors = new Dictionary<string, string[]>();
        if (await WebhookTargets.Refusal(request.Url, settings.Value.AllowPrivateTargets, ct) is { } refusal) errors["url"] = [refusal];
        string[]? eventTypes = null;
        if (request.EventTypes is not null)
        {
            var unknown = request.EventTypes.Where(t => !WebhookEventTypes.Known.Contains(t, StringComparer.Ordinal)).ToList();
            if (unknown.Count > 0)
                errors["eventTypes"] = [$"Unknown event type(s) {string.Join(", ", unknown.Select(u => $"'{u}'"))}; use {string.Join(", ", WebhookEventTypes.Known)}, or omit eventTypes for all."];
            else if (request.EventTypes.Length == 0)
                errors["eventTypes"] = ["eventTypes must name at least one event type; omit it for all."];
            else eventTypes = request.EventTypes.Distinct(StringComparer.Ordinal).ToArray();
        }
        if (errors.Count > 0) return Problems.Validation("The webhook is not valid.", errors);

        var tenantId = session.TenantId;
        var existing = await session.Query<WebhookSubscription>().CountAsync(s => s.TenantId == tenantId, ct);
        if (existing >= MaxWebhooksPerTenant)
            return Problems.Validation("url", $"This tenant already has {existing} webhooks, the most it may have ({MaxWebhooksPerTenant}). Delete one first.");

        var secret = WebhookSecrets.Generate();
        var subscription = new WebhookSubscription
        {
            Id = Guid.CreateVersion7(),
            TenantId = tenantId,
            Url = request.Url!,
            EventTypes = eventTypes,
            CreatedAt = clock.GetCurrentInstant(),
        };
        subscription.SealedSecret = secrets.Seal(subscription.Id, secret);
        session.Insert(subscription);
        await session.SaveChangesAsync(ct);
        cache.Changed(tenantId);
        // Every node decides which events go to the webhooks from its own copy of the tenant's list, reused for up to
        // Webhooks:SubscriptionCacheTime (WebhookSubscriptionCache): another node may still hold the list from before this
        // commit, and would not record the change it writes now for this webhook. Answering only once every copy taken
        // before the commit has expired is what serializes the two: every change whose request starts after the 201 is
        // delivered, on whichever node it is made (WebhookDeliveryTests, two nodes). Nothing else waits: the writes pay
        // no query for a tenant without webhooks.
        await Task.Delay(settings.Value.SubscriptionCacheTime, ct);
        return Results.Created($"/webhooks/{subscription.Id}", WebhookView.Of(subscription, secret));
    }
}
