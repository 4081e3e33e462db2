using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Wolverine.Http;

namespace Enrolment.Api.Features.Webhooks;

public static class GetWebhookEndpoint
{
    [ProducesResponseType<WebhookView>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [WolverineGet("/webhooks/{webhookId}", OperationId = "getWebhook"), Authorize(Policy = AuthPolicies.Webhooks)]
    [Tags("Webhooks")]
    [EndpointSummary("One webhook: its url, event types and status (disabled with its reason after 24 hours without a 2xx). The secret is never shown again.")]
    public static async Task<IResult> Get(string webhookId, IQuerySession session, CancellationToken ct)
    {
        var (subscription, problem) = await WebhookLookup.Find(session, webhookId, ct);
        return problem ?? Results.Ok(WebhookView.Of(subscription!));
    }
}
