using Enrolment.Api.Features.Assignments;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine.Http;

namespace Enrolment.Api.Features.Summaries;

public static class GetAssignmentSummaryEndpoint
{
    [WolverineGet("/assignments/{assignmentId}/summary", OperationId = "getAssignmentSummary"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Summaries")]
    [EndpointSummary("How the assignment is going: its enrolments per status, completions on time, late and waived, and the instant the numbers are accurate to (eventually consistent, usually within a second).")]
    [ProducesResponseType<AssignmentSummaryView>(StatusCodes.Status200OK)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound, "application/problem+json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status422UnprocessableEntity, "application/problem+json")]
    public static async Task<IResult> Get(string assignmentId, IQuerySession session, IClock clock, CancellationToken ct)
    {
        if (!RouteIds.TryGuid(assignmentId, "assignmentId", out var id, out var problem)) return problem!;
        var batch = session.CreateBatchQuery();
        var assignment = batch.Load<Assignment>(id);
        var summary = batch.Load<EnrolmentSummary>(EnrolmentSummary.ForAssignment(id));
        await batch.Execute(ct);
        if (await assignment is null) return Problems.NotFound($"There is no assignment {assignmentId}.");
        var s = await summary;
        var counts = Summaries.ByStatus(s);
        return Results.Ok(new AssignmentSummaryView(id, Summaries.Total(counts), counts, s?.CompletedOnTime ?? 0, s?.CompletedLate ?? 0, s?.Waived ?? 0,
            await Summaries.AsOf(session, clock, ct)));
    }
}
