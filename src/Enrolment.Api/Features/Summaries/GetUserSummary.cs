using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine.Http;

namespace Enrolment.Api.Features.Summaries;

public static class GetUserSummaryEndpoint
{
    [WolverineGet("/users/{userId}/summary", OperationId = "getUserSummary"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Summaries")]
    [EndpointSummary("One user's standing across their assignments: enrolments per status, completions on time, late and waived, and the instant the numbers are accurate to (eventually consistent).")]
    [ProducesResponseType<UserSummaryView>(StatusCodes.Status200OK)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound, "application/problem+json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status422UnprocessableEntity, "application/problem+json")]
    public static async Task<IResult> Get(string userId, IQuerySession session, IClock clock, CancellationToken ct)
    {
        if (!Ids.IsValidExternalId(userId)) return Problems.Validation("userId", "Required: 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -");
        var s = await session.LoadAsync<EnrolmentSummary>(EnrolmentSummary.ForUser(userId), ct);
        // Known = enrolled at least once; until the daemon has projected them, that answers zeros.
        if (s is null && !await session.Query<EnrolmentState>().AnyAsync(e => e.UserId == userId, ct))
            return Problems.NotFound($"User {userId} has no enrolments.");
        var counts = Summaries.ByStatus(s);
        return Results.Ok(new UserSummaryView(userId, Summaries.Total(counts), counts, s?.CompletedOnTime ?? 0, s?.CompletedLate ?? 0, s?.Waived ?? 0,
            await Summaries.AsOf(session, clock, ct)));
    }
}
