using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Api.Infrastructure.OpenApi;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Sql;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Wolverine.Http;

namespace Enrolment.Api.Features.Thrive;

/// <summary>
/// Thrive's enrolment list: the same filters and query as our list (<see cref="EnrolmentTable.PageCommand"/>), in numbered
/// pages, each enrolment as GET …/enrolments/{enrolmentId} answers it.
/// </summary>
public static class ListThriveEnrolmentsEndpoint
{
    public const int MaxPerPage = 100;

    [WolverineGet("/rest/v1/assignments/{assignmentId}/enrolments", OperationId = "thriveListEnrolments"), Authorize(Policy = AuthPolicies.Read)]
    [Tags(ThriveApi.Tag)]
    [EndpointSummary("Thrive: the assignment's enrolments as a JSON array, filtered by status (one or a comma-separated list) and updatedAtFrom (inclusive) / updatedAtTo (exclusive); page from 1, perPage 1–100 (default 100). X-Total-Count holds the total, Link the other pages.")]
    [ProducesHeader(StatusCodes.Status200OK, ThrivePages.TotalCountHeader, ThrivePages.TotalCountDescription, Integer = true)]
    [ProducesHeader(StatusCodes.Status200OK, "Link", ThrivePages.LinkDescription)]
    [ProducesResponseType<EnrolmentView[]>(StatusCodes.Status200OK, "application/json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound, "application/problem+json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status422UnprocessableEntity, "application/problem+json")]
    public static async Task<IResult> Get(string assignmentId, string? status, string? updatedAtFrom, string? updatedAtTo, int? page, int? perPage,
        IQuerySession session, EnrolmentTable table, CancellationToken ct)
    {
        if (!RouteIds.TryGuid(assignmentId, "assignmentId", out var aid, out var problem)) return problem!;
        var errors = new Dictionary<string, string[]>();
        var filter = EnrolmentLists.ParseFilter(aid, null, status, updatedAtFrom, updatedAtTo, errors);
        var paging = ThrivePages.Parse(page, perPage, MaxPerPage, errors);
        if (filter is null || paging is null) return ThrivePages.Invalid(errors);
        if (await session.LoadAsync<Assignments.Assignment>(aid, ct) is null) return Problems.NotFound($"There is no assignment {assignmentId}.");

        var (items, total) = await table.OffsetPage(session.TenantId, filter, paging.Offset, paging.PerPage, ct);
        return ThrivePages.RawArray(items, paging, total);
    }
}
