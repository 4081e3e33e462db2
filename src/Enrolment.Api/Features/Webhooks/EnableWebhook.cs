using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine.Http;

namespace Enrolment.Api.Features.Webhooks;

public static class EnableWebhookEndpoint
{
    [ProducesResponseType<WebhookView>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [WolverinePost("/webhooks/{webhookId}/enable", OperationId = "enableWebhook"), Authorize(Policy = AuthPolicies.Webhooks)]
    [Tags("Webhooks")]
    [EndpointSummary("Make a disabled webhook active again: everything it missed while disabled is delivered, in order per enrolment, starting now.")]
    public static async Task<IResult> Post(string webhookId, IDocumentSession session, WebhookSubscriptionCache cache, IClock clock, CancellationToken ct)
    {
        var (subscription, problem) = await WebhookLookup.Find(session, webhookId, ct);
        if (problem is not null) return problem;
        subscription!.Status = WebhookStatus.Active;
        subscription.DisabledReason = null;
        subscription.DisabledAt = null;
        session.Store(subscription);
        // In the same transaction: every pending delivery is due now and gets a new 24-hour window.
        WebhookDeliveries.Resume(session, subscription.Id, clock.GetCurrentInstant());
        await session.SaveChangesAsync(ct);
        cache.Changed(subscription.TenantId);
        return Results.Ok(WebhookView.Of(subscription));
    }
}
