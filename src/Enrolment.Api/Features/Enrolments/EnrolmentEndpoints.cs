using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine;
using Wolverine.Http;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>
/// The writes on one enrolment: load its stream for writing (optimistic concurrency from that version), let the
/// rules decide, append what they decided. Wolverine commits; a lost race is a 409 problem document.
/// </summary>
public static class EnrolmentWrites
{
    public static async Task<IResult> Decide(string assignmentId, string enrolmentId, IDocumentSession session, IMessageBus bus, CancellationToken ct,
        Func<EnrolmentState, Decision> decide)
    {
        if (!RouteIds.TryGuid(assignmentId, "assignmentId", out var aid, out var problem)) return problem!;
        if (!RouteIds.TryGuid(enrolmentId, "enrolmentId", out var eid, out problem)) return problem!;

        var stream = await session.Events.FetchForWriting<EnrolmentState>(eid, ct);
        if (stream.Aggregate is null || stream.Aggregate.AssignmentId != aid)
            return Problems.NotFound($"Assignment {assignmentId} has no enrolment {enrolmentId}.");

        var decision = decide(stream.Aggregate);
        if (decision.Rejection is { } rejection) return Problems.From(rejection);

        var view = await session.LoadAsync<EnrolmentView>(eid, ct);
        if (decision.Events.Count > 0)
        {
            await EnrolmentChanges.Append(stream, decision.Events, bus, session.TenantId);
            // The inline projection stores the same fold when Wolverine commits; answer with it now.
            foreach (var e in decision.Events) view = EnrolmentViewProjection.Fold(view, e);
        }
        return Results.Ok(view);
    }
}

public static class RecordReminderEndpoint
{
    [ProducesResponseType<EnrolmentView>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [WolverinePost("/assignments/{assignmentId}/enrolments/{enrolmentId}/reminders", OperationId = "recordReminder"), Authorize(Policy = AuthPolicies.Write)]
    [Tags("Enrolments")]
    [EndpointSummary("Record that a reminder was sent. Adds an eventLog entry; the status does not change.")]
    public static Task<IResult> Post(string assignmentId, string enrolmentId, IDocumentSession session, IMessageBus bus, IClock clock, CancellationToken ct) =>
        EnrolmentWrites.Decide(assignmentId, enrolmentId, session, bus, ct, state => EnrolmentRules.Remind(state, clock.GetCurrentInstant()));
}

public static class ArchiveEnrolmentEndpoint
{
    [ProducesResponseType<EnrolmentView>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [WolverinePost("/assignments/{assignmentId}/enrolments/{enrolmentId}/archive", OperationId = "archiveEnrolment"), Authorize(Policy = AuthPolicies.Write)]
    [Tags("Enrolments")]
    [EndpointSummary("Archive the enrolment. Archiving an archived enrolment changes nothing.")]
    public static Task<IResult> Post(string assignmentId, string enrolmentId, IDocumentSession session, IMessageBus bus, IClock clock, CancellationToken ct) =>
        EnrolmentWrites.Decide(assignmentId, enrolmentId, session, bus, ct, state => EnrolmentRules.Archive(state, ArchiveReason.Explicit, clock.GetCurrentInstant()));
}

public static class GetEnrolmentEndpoint
{
    [ProducesResponseType<EnrolmentView>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [WolverineGet("/assignments/{assignmentId}/enrolments/{enrolmentId}", OperationId = "getEnrolment"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Enrolments")]
    [EndpointSummary("The enrolment with its eventLog; with ?asOf=<instant>, as it was at that instant, rebuilt from its events.")]
    public static async Task<IResult> Get(string assignmentId, string enrolmentId, string? asOf, IQuerySession session, CancellationToken ct)
    {
        if (!RouteIds.TryGuid(assignmentId, "assignmentId", out var aid, out var problem)) return problem!;
        if (!RouteIds.TryGuid(enrolmentId, "enrolmentId", out var eid, out problem)) return problem!;
        var notFound = Problems.NotFound($"Assignment {assignmentId} has no enrolment {enrolmentId}.");

        if (asOf is null)
        {
            var view = await session.LoadAsync<EnrolmentView>(eid, ct);
            return view is null || view.AssignmentId != aid ? notFound : Results.Ok(view);
        }

        if (!Json.TryParseInstant(asOf, out var instant))
            return Problems.Validation("asOf", "asOf must be an ISO-8601 instant such as 2023-08-23T09:09:16.076Z.");
        var events = await session.Events.FetchStreamAsync(eid, token: ct);
        EnrolmentView? past = null;
        foreach (var e in events)
        {
            if (e.Data is not IEnrolmentEvent data || data.At > instant) continue;
            past = EnrolmentViewProjection.Fold(past, data);
        }
        if (past is null || past.AssignmentId != aid)
            return events.Count > 0 && events[0].Data is EnrolmentAssigned a && a.AssignmentId == aid
                ? Problems.NotFound($"Enrolment {enrolmentId} did not exist yet at {Json.Format(instant)}.")
                : notFound;
        return Results.Ok(past);
    }
}

public sealed record StoredEvent(long Sequence, long Version, string EventType, Instant Timestamp, object Data);

public static class GetEnrolmentEventsEndpoint
{
    [ProducesResponseType<List<StoredEvent>>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [WolverineGet("/assignments/{assignmentId}/enrolments/{enrolmentId}/events", OperationId = "getEnrolmentEvents"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Enrolments")]
    [EndpointSummary("The enrolment's raw event stream, for audit: sequence, version, eventType, timestamp (when stored) and data.")]
    public static async Task<IResult> Get(string assignmentId, string enrolmentId, IQuerySession session, CancellationToken ct)
    {
        if (!RouteIds.TryGuid(assignmentId, "assignmentId", out var aid, out var problem)) return problem!;
        if (!RouteIds.TryGuid(enrolmentId, "enrolmentId", out var eid, out problem)) return problem!;
        var events = await session.Events.FetchStreamAsync(eid, token: ct);
        if (events.Count == 0 || events[0].Data is not EnrolmentAssigned first || first.AssignmentId != aid)
            return Problems.NotFound($"Assignment {assignmentId} has no enrolment {enrolmentId}.");
        return Results.Ok(events.Select(e => new StoredEvent(e.Sequence, e.Version,
            e.Data is IEnrolmentEvent d ? EnrolmentEvents.EventType(d) : e.EventTypeName, Instant.FromDateTimeOffset(e.Timestamp), e.Data)).ToList());
    }
}
