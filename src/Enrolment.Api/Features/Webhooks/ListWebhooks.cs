using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Wolverine.Http;

namespace Enrolment.Api.Features.Webhooks;

public static class ListWebhooksEndpoint
{
    [WolverineGet("/webhooks", OperationId = "listWebhooks"), Authorize(Policy = AuthPolicies.Webhooks)]
    [Tags("Webhooks")]
    [EndpointSummary("The tenant's webhooks (at most 20, so unpaged), oldest first, without their secrets.")]
    public static async Task<WebhookList> Get(IQuerySession session, CancellationToken ct)
    {
        var tenantId = session.TenantId;
        var subscriptions = await session.Query<WebhookSubscription>().Where(s => s.TenantId == tenantId).ToListAsync(ct);
        return new WebhookList(subscriptions.OrderBy(s => s.CreatedAt).ThenBy(s => s.Id).Select(s => WebhookView.Of(s)).ToList());
    }
}
