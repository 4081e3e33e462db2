using System.Globalization;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Wolverine.Http;

namespace Enrolment.Api.Features.Webhooks;

public static class ListWebhookDeliveriesEndpoint
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 500;

    [ProducesResponseType<WebhookDeliveryPage>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [WolverineGet("/webhooks/{webhookId}/deliveries", OperationId = "listWebhookDeliveries"), Authorize(Policy = AuthPolicies.Webhooks)]
    [Tags("Webhooks")]
    [EndpointSummary("The webhook's deliveries, newest first, each with every attempt (instant, HTTP status or error, duration); limit (1–500, default 100) and an opaque cursor.")]
    public static async Task<IResult> Get(string webhookId, int? limit, string? cursor, IQuerySession session, CancellationToken ct)
    {
        var deliveries = new WebhookDeliveries(Infrastructure.TenantPool.DataSourceOf(session.Database)); // the tenant's shard
        var (subscription, problem) = await WebhookLookup.Find(session, webhookId, ct);
        if (problem is not null) return problem;
        var errors = new Dictionary<string, string[]>();
        var take = limit ?? DefaultLimit;
        if (take is < 1 or > MaxLimit) errors["limit"] = [$"limit must be between 1 and {MaxLimit}."];
        long? before = null;
        if (cursor is not null)
        {
            if (DecodeCursor(cursor) is { } seq) before = seq;
            else errors["cursor"] = ["cursor is not one this service issued: pass nextCursor from the previous page as it is."];
        }
        if (errors.Count > 0) return Problems.Validation("The list query is not valid.", errors);

        var (items, next) = await deliveries.Page(subscription!.Id, before, take, ct);
        return Results.Ok(new WebhookDeliveryPage(items, next is { } n ? EncodeCursor(n) : null));
    }

    // Opaque to clients: base64url of "d:" and the last row's position.
    private static string EncodeCursor(long seq) =>
        Convert.ToBase64String(System.Text.Encoding.ASCII.GetBytes("d:" + seq.ToString(CultureInfo.InvariantCulture))).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static long? DecodeCursor(string cursor)
    {
        if (cursor.Length is 0 or > 64) return null;
        var base64 = cursor.Replace('-', '+').Replace('_', '/');
        base64 += new string('=', (4 - base64.Length % 4) % 4);
        var buffer = new byte[48];
        if (!Convert.TryFromBase64String(base64, buffer, out var written)) return null;
        var text = System.Text.Encoding.ASCII.GetString(buffer, 0, written);
        return text.StartsWith("d:", StringComparison.Ordinal) && long.TryParse(text.AsSpan(2), NumberStyles.None, CultureInfo.InvariantCulture, out var seq) && seq > 0 ? seq : null;
    }
}
