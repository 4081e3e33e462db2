using Enrolment.Api.Features.Audiences;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Features.Operations;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine;
using Wolverine.Http;

namespace Enrolment.Api.Features.Assignments;

/// <summary>audienceId and primaryContentId are required; the rest is optional (availableDate defaults to now).</summary>
public sealed record CreateAssignmentRequest(
    string? AudienceId, string? PrimaryContentId, string? AvailableDate = null, string? CompletionPeriod = null, string? DueDate = null,
    string? Recurrence = null, string? TimeZone = null);

/// <summary>An assignment, with the operation that enrols (or archives) its audience.</summary>
public sealed record AssignmentResponse(Assignment Assignment, OperationStatus Operation);

public static class CreateAssignmentEndpoint
{
    [ProducesResponseType<AssignmentResponse>(StatusCodes.Status201Created)]
    [WolverinePost("/assignments", OperationId = "createAssignment"), Authorize(Policy = AuthPolicies.Write)]
    [Tags("Assignments")]
    [EndpointSummary("Create an assignment: audienceId must complete primaryContentId, from availableDate (default now), within completionPeriod or by dueDate, optionally recurring. Enrols the audience's members in durable batches.")]
    public static async Task<IResult> Post(CreateAssignmentRequest? request, IDocumentSession session, IMessageBus bus, IClock clock, CancellationToken ct)
    {
        if (request is null) return Problems.Validation("body", "The body must be a JSON object.");
        var now = clock.GetCurrentInstant();
        var errors = new Dictionary<string, string[]>();
        if (!Ids.IsValidExternalId(request.AudienceId)) errors["audienceId"] = ["Required: 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -"];
        if (!Ids.IsValidExternalId(request.PrimaryContentId)) errors["primaryContentId"] = ["Required: 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -"];
        var available = now;
        if (request.AvailableDate is not null && !Json.TryParseInstant(request.AvailableDate, out available)) errors["availableDate"] = ["Must be an ISO-8601 instant such as 2023-08-23T09:09:16.076Z."];
        Instant? due = null;
        if (request.DueDate is not null) { if (Json.TryParseInstant(request.DueDate, out var d)) due = d; else errors["dueDate"] = ["Must be an ISO-8601 instant such as 2023-08-23T09:09:16.076Z."]; }
        Period? completionPeriod = null, recurrence = null;
        if (request.CompletionPeriod is not null) { if (Json.TryParsePeriod(request.CompletionPeriod, out var p)) completionPeriod = p; else errors["completionPeriod"] = ["Must be an ISO-8601 period such as P30D, P1M or PT30S."]; }
        if (request.Recurrence is not null) { if (Json.TryParsePeriod(request.Recurrence, out var p)) recurrence = p; else errors["recurrence"] = ["Must be an ISO-8601 period such as P1Y, P1M or PT30S."]; }
        var zone = request.TimeZone ?? Schedule.DefaultTimeZone;
        if (errors.Count == 0 && Schedule.Validate(available, completionPeriod, due, recurrence, zone) is { } invalid)
            errors["schedule"] = [invalid];
        if (errors.Count > 0) return Problems.Validation("The assignment is not valid.", errors);

        var id = Guid.CreateVersion7();
        var schedule = new Schedule(available, completionPeriod, due, recurrence, zone);
        var created = new AssignmentCreated(id, request.AudienceId!, request.PrimaryContentId!, schedule, now);
        session.Events.StartStream<Assignment>(id, created);

        // Rule 4 of the one writer: a membership change of this audience committed before is read here; one after it
        // waits for this commit, and its batches then find this assignment.
        await EnrolmentWriter.LockAudience(session, request.AudienceId!, ct);
        var members = await session.Query<AudienceMember>().Where(m => m.AudienceId == request.AudienceId).Select(m => m.UserId).ToListAsync(ct);
        // Its own lock row is created now, committed with it: every batch below locks it shared, and a row that a batch
        // had to insert would be that batch's alone until it commits, so the other batches would queue behind the first.
        await EnrolmentWriter.LockAssignments(session, [id], shared: false, ct);
        var operation = await FanOut.Start(session, bus, FanOutKind.AssignmentCreated, request.AudienceId!, id, members, now);

        var assignment = new AssignmentProjection().Evolve(null, id, new JasperFx.Events.Event<AssignmentCreated>(created))!;
        return Results.Created($"/assignments/{id}", new AssignmentResponse(assignment, OperationStatus.Started(operation)));
    }
}

public static class GetAssignmentEndpoint
{
    [ProducesResponseType<Assignment>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [WolverineGet("/assignments/{assignmentId}", OperationId = "getAssignment"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Assignments")]
    [EndpointSummary("The assignment: its audience, content, schedule (availableDate, completionPeriod or dueDate, recurrence, timeZone) and status.")]
    public static async Task<IResult> Get(string assignmentId, IQuerySession session, CancellationToken ct)
    {
        if (!RouteIds.TryGuid(assignmentId, "assignmentId", out var id, out var problem)) return problem!;
        var assignment = await session.LoadAsync<Assignment>(id, ct);
        return assignment is null ? Problems.NotFound($"There is no assignment {assignmentId}.") : Results.Ok(assignment);
    }
}

public static class RemoveAssignmentEndpoint
{
    [ProducesResponseType<OperationStatus>(StatusCodes.Status202Accepted), ProducesResponseType(StatusCodes.Status404NotFound)]
    [WolverineDelete("/assignments/{assignmentId}", OperationId = "removeAssignment"), Authorize(Policy = AuthPolicies.Write)]
    [Tags("Assignments")]
    [EndpointSummary("Remove the assignment: all its enrolments become archived, in durable batches. 202 with the operation to poll.")]
    public static async Task<IResult> Delete(string assignmentId, IDocumentSession session, IMessageBus bus, IClock clock, CancellationToken ct)
    {
        if (!RouteIds.TryGuid(assignmentId, "assignmentId", out var id, out var problem)) return problem!;
        // Rule 4 of the one writer: a fan-out batch enrolling users in this assignment holds it shared until it commits,
        // so the enrolments read below include its; a batch after this commit sees the assignment removed.
        await EnrolmentWriter.LockAssignments(session, [id], shared: false, ct);
        var stream = await session.Events.FetchForWriting<Assignment>(id, ct);
        if (stream.Aggregate is null) return Problems.NotFound($"There is no assignment {assignmentId}.");
        if (!stream.Aggregate.IsActive) return Problems.Conflict("assignment-removed", $"Assignment {assignmentId} was already removed at {Json.Format(stream.Aggregate.RemovedAt!.Value)}.");

        var now = clock.GetCurrentInstant();
        stream.AppendOne(new AssignmentRemoved(id, now));
        var users = await session.Query<EnrolmentState>().Where(v => v.AssignmentId == id && v.Status != EnrolmentStatus.Archived).Select(v => v.UserId).ToListAsync(ct);
        var operation = await FanOut.Start(session, bus, FanOutKind.AssignmentRemoved, stream.Aggregate.AudienceId, id, users, now);
        return Results.Accepted($"/operations/{operation.Id}", OperationStatus.Started(operation));
    }
}
