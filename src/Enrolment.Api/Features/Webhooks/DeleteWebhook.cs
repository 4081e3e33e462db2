using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Wolverine.Http;

namespace Enrolment.Api.Features.Webhooks;

public static class DeleteWebhookEndpoint
{
    [ProducesResponseType(StatusCodes.Status204NoContent), ProducesResponseType(StatusCodes.Status404NotFound)]
    [WolverineDelete("/webhooks/{webhookId}", OperationId = "deleteWebhook"), Authorize(Policy = AuthPolicies.Webhooks)]
    [Tags("Webhooks")]
    [EndpointSummary("Unsubscribe: nothing more is delivered, and the webhook's pending and past deliveries are forgotten.")]
    public static async Task<IResult> Delete(string webhookId, IDocumentSession session, WebhookSubscriptionCache cache, CancellationToken ct)
    {
        var (subscription, problem) = await WebhookLookup.Find(session, webhookId, ct);
        if (problem is not null) return problem;
        session.Delete(subscription!);
        WebhookDeliveries.Forget(session, subscription!.Id);
        await session.SaveChangesAsync(ct);
        cache.Changed(subscription.TenantId);
        return Results.NoContent();
    }
}
