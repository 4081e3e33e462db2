using System.Text.Json;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine.Http;

namespace Enrolment.Api.Features.Enrolments;

/// <param name="Actor">Who caused the event (legacy: written before actors were recorded).</param>
/// <param name="CorrelationId">The W3C trace id of the request or message that caused it, or null.</param>
/// <param name="Data">The event's data exactly as stored (the shape of the version that wrote it).</param>
/// <param name="Hash">The event's link in the audit hash chain (docs/audit.md); <paramref name="PreviousHash"/> its predecessor's.</param>
public sealed record StoredEvent(long Sequence, long Version, string EventType, Instant Timestamp, object Data, Compliance.Actor Actor, string? CorrelationId, string? Hash, string? PreviousHash);

public static class GetEnrolmentEventsEndpoint
{
    [WolverineGet("/assignments/{assignmentId}/enrolments/{enrolmentId}/events", OperationId = "getEnrolmentEvents"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Enrolments")]
    [ProducesResponseType<List<StoredEvent>>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [EndpointSummary("The enrolment's raw event stream, for audit: sequence, version, eventType, timestamp (when stored), data, the actor who caused each event, its correlation id, hash and previousHash.")]
    public static async Task<IResult> Get(string assignmentId, string enrolmentId, IQuerySession session, Features.Audit.AuditTables audit, CancellationToken ct)
    {
        if (!RouteIds.TryGuid(assignmentId, "assignmentId", out var aid, out var problem)) return problem!;
        if (!RouteIds.TryGuid(enrolmentId, "enrolmentId", out var eid, out problem)) return problem!;
        var events = await session.Events.FetchStreamAsync(eid, token: ct);
        if (events.Count == 0 || events[0].Data is not EnrolmentAssigned first || first.AssignmentId != aid)
            return Problems.NotFound($"Assignment {assignmentId} has no enrolment {enrolmentId}.");
        // The data as stored, not as Marten hands it out: an event stored in an earlier shape is shown in that shape,
        // as it was shown when it was written, and as the hash chain covers it (docs/architecture.md, "How an event
        // changes shape"). The eventType is the contract's name, the same for every shape.
        var stored = await audit.Stored(session.TenantId, eid, ct);
        return Results.Ok(events.Where(e => stored.ContainsKey(e.Version)).Select(e =>
        {
            var (data, hash, previousHash) = stored[e.Version];
            return new StoredEvent(e.Sequence, e.Version,
                e.Data is IEnrolmentEvent d ? EnrolmentEvents.EventType(d) : e.EventTypeName, Instant.FromDateTimeOffset(e.Timestamp),
                JsonSerializer.Deserialize<JsonElement>(data), Compliance.EventActors.Of(e), e.CorrelationId, hash, previousHash);
        }).ToList());
    }
}
