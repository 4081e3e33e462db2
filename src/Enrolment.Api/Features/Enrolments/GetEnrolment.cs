using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Wolverine.Http;

namespace Enrolment.Api.Features.Enrolments;

public static class GetEnrolmentEndpoint
{
    [WolverineGet("/assignments/{assignmentId}/enrolments/{enrolmentId}", OperationId = "getEnrolment"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Enrolments")]
    [ProducesResponseType<EnrolmentView>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [EndpointSummary("The enrolment with its eventLog; with ?asOf=<instant>, as it was at that instant, rebuilt from its events.")]
    public static async Task<IResult> Get(string assignmentId, string enrolmentId, string? asOf, IQuerySession session, EnrolmentTable table, CancellationToken ct)
    {
        if (!RouteIds.TryGuid(assignmentId, "assignmentId", out var aid, out var problem)) return problem!;
        if (!RouteIds.TryGuid(enrolmentId, "enrolmentId", out var eid, out problem)) return problem!;
        var notFound = Problems.NotFound($"Assignment {assignmentId} has no enrolment {enrolmentId}.");

        if (asOf is null)
        {
            // One primary-key row, sent as PostgreSQL returns it.
            var stored = await table.PublicJson(session.TenantId, eid, ct);
            return stored is { } s && s.AssignmentId == aid ? Results.Text(s.Json, "application/json; charset=utf-8") : notFound;
        }

        if (!Json.TryParseInstant(asOf, out var instant))
            return Problems.Validation("asOf", "asOf must be an ISO-8601 instant such as 2023-08-23T09:09:16.076Z.");
        var events = await session.Events.FetchStreamAsync(eid, token: ct);
        var past = EnrolmentState.Replay(events.Select(e => e.Data).OfType<IEnrolmentEvent>().Where(e => e.At <= instant));
        if (past is null || past.AssignmentId != aid)
            return events.Count > 0 && events[0].Data is EnrolmentAssigned a && a.AssignmentId == aid
                ? Problems.NotFound($"Enrolment {enrolmentId} did not exist yet at {Json.Format(instant)}.")
                : notFound;
        return Results.Ok(EnrolmentView.From(past));
    }
}
