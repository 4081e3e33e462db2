using Enrolment.Api.Features.Completions;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Api.Infrastructure.OpenApi;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine.Http;

namespace Enrolment.Api.Features.Thrive;

/// <summary>
/// Thrive's completion list, read from the stored <see cref="CompletionRecord"/>s (every completion recorded through
/// any route: POST /completions, the bus, Thrive's POST), oldest completedAt first.
/// </summary>
public static class ListThriveCompletionsEndpoint
{
    public const int MaxPerPage = 1000;

    [WolverineGet("/rest/v1/learning/completions", OperationId = "thriveListCompletions"), Authorize(Policy = AuthPolicies.Read)]
    [Tags(ThriveApi.Tag)]
    [EndpointSummary("Thrive: completion records as a JSON array, filtered by userId, contentId and completedDateRangeStart (inclusive) / completedDateRangeEnd (exclusive), oldest first; page from 1, perPage 1–1000 (default 100). X-Total-Count holds the total, Link the other pages.")]
    [ProducesHeader(StatusCodes.Status200OK, ThrivePages.TotalCountHeader, ThrivePages.TotalCountDescription, Integer = true)]
    [ProducesHeader(StatusCodes.Status200OK, "Link", ThrivePages.LinkDescription)]
    [ProducesResponseType<ThriveCompletion[]>(StatusCodes.Status200OK, "application/json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status422UnprocessableEntity, "application/problem+json")]
    public static async Task<IResult> Get(string? userId, string? contentId, string? completedDateRangeStart, string? completedDateRangeEnd, int? page, int? perPage,
        IQuerySession session, CancellationToken ct)
    {
        if (userId is not null && !RouteIds.TryExternal(userId, "userId", out var problem)) return problem!;
        if (contentId is not null && !RouteIds.TryExternal(contentId, "contentId", out problem)) return problem!;
        var errors = new Dictionary<string, string[]>();
        var start = EnrolmentLists.ParseInstant(completedDateRangeStart, nameof(completedDateRangeStart), errors);
        var end = EnrolmentLists.ParseInstant(completedDateRangeEnd, nameof(completedDateRangeEnd), errors);
        if (start is { } s && end is { } e && e < s) errors[nameof(completedDateRangeEnd)] = ["completedDateRangeEnd must not be before completedDateRangeStart."];
        var paging = ThrivePages.Parse(page, perPage, MaxPerPage, errors);
        if (errors.Count > 0 || paging is null) return ThrivePages.Invalid(errors);

        IQueryable<CompletionRecord> Query()
        {
            IQueryable<CompletionRecord> query = session.Query<CompletionRecord>();
            if (userId is not null) query = query.Where(r => r.Result.UserId == userId);
            if (contentId is not null) query = query.Where(r => r.Result.ContentId == contentId);
            if (start is { } from) query = query.Where(r => r.Result.CompletedAt >= from);
            if (end is { } to) query = query.Where(r => r.Result.CompletedAt < to);
            return query.OrderBy(r => r.Result.CompletedAt).ThenBy(r => r.Id);
        }

        var (records, total) = await ThrivePages.Read(Query, paging, ct);
        return ThrivePages.Array(records.Select(r => ThriveCompletion.From(r.Result)).ToList(), paging, total);
    }

}
