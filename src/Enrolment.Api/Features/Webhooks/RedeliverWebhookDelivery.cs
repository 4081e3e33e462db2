using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine.Http;

namespace Enrolment.Api.Features.Webhooks;

public static class RedeliverWebhookDeliveryEndpoint
{
    [ProducesResponseType<WebhookDelivery>(StatusCodes.Status202Accepted), ProducesResponseType(StatusCodes.Status404NotFound), ProducesResponseType(StatusCodes.Status409Conflict)]
    [WolverinePost("/webhooks/{webhookId}/deliveries/{deliveryId}/redeliver", OperationId = "redeliverWebhookDelivery"), Authorize(Policy = AuthPolicies.Webhooks)]
    [Tags("Webhooks")]
    [EndpointSummary("Send one delivery again (delivered or not), with the same x-delivery-id and the next x-delivery-attempt. 202: it is sent within seconds, after any earlier pending delivery of its enrolment.")]
    public static async Task<IResult> Post(string webhookId, string deliveryId, IQuerySession session, IClock clock, CancellationToken ct)
    {
        var deliveries = new WebhookDeliveries(Infrastructure.TenantPool.DataSourceOf(session.Database)); // the tenant's shard
        var (subscription, problem) = await WebhookLookup.Find(session, webhookId, ct);
        if (problem is not null) return problem;
        if (!RouteIds.TryGuid(deliveryId, "deliveryId", out var id, out var invalid)) return invalid!;
        if (subscription!.Status != WebhookStatus.Active)
            return Problems.Conflict("webhook-disabled", $"Webhook {webhookId} is disabled ({subscription.DisabledReason}). POST /webhooks/{webhookId}/enable first: that also delivers everything it missed.");
        if (!await deliveries.Redeliver(subscription.Id, id, clock.GetCurrentInstant(), ct))
            return Problems.NotFound($"Webhook {webhookId} has no delivery {deliveryId}.");
        return Results.Accepted($"/webhooks/{webhookId}/deliveries", await deliveries.Find(subscription.Id, id, ct));
    }
}
