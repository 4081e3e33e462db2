using System.Text.Json;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Marten.Linq.CursorPaging;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Wolverine.Http;

namespace Enrolment.Api.Features.Enrolments;

public sealed record EnrolmentPage(IReadOnlyList<EnrolmentView> Items, string? NextCursor);

/// <summary>
/// Keyset paging by enrolment id (Marten's cursor paging): a page is an index range scan whatever the total, and
/// its items are the stored JSON written to the response as it is — the read model is stored in the API's
/// shape, so nothing is deserialised or serialised again. The cursor is opaque to clients.
/// </summary>
public static class EnrolmentLists
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 500;
    private static readonly string[] Statuses = ["scheduled", "open", "overdue", "complete", "archived"];

    public static async Task<IResult> Page(IQuerySession session, Guid? assignmentId, string? userId, string? status, int? limit, string? cursor, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (status is not null && !Statuses.Contains(status)) errors["status"] = [$"status must be one of {string.Join(", ", Statuses)}."];
        if (userId is not null && !Ids.IsValidExternalId(userId)) errors["userId"] = ["userId must be 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -"];
        var take = limit ?? DefaultLimit;
        if (take is < 1 or > MaxLimit) errors["limit"] = [$"limit must be between 1 and {MaxLimit}."];
        if (cursor is not null && !IsWellFormedCursor(cursor)) errors["cursor"] = [BadCursor];
        if (errors.Count > 0) return Problems.Validation("The list query is not valid.", errors);

        IQueryable<EnrolmentView> query = session.Query<EnrolmentView>();
        if (assignmentId is { } a) query = query.Where(v => v.AssignmentId == a);
        if (userId is not null) query = query.Where(v => v.UserId == userId);
        if (status is not null) query = query.Where(v => v.Status == status);

        CursorPageResult page;
        try
        {
            page = await query.OrderBy(v => v.Id).ToJsonPageByCursorAsync(cursor, take, ct);
        }
        catch (Exception e) when (cursor is not null && e is FormatException or JsonException or ArgumentException or InvalidCastException)
        {
            // Well-formed base64 whose content Marten cannot read as a position: not a cursor this service issued.
            return Problems.Validation("The list query is not valid.", new Dictionary<string, string[]> { ["cursor"] = [BadCursor] });
        }
        return new RawJsonPage(page);
    }

    private const string BadCursor = "cursor is not one this service issued: pass nextCursor from the previous page as it is.";

    // Marten's cursors are base64 of the last row's sort keys; anything much longer is not one of them.
    private static bool IsWellFormedCursor(string cursor) => cursor.Length is > 0 and <= 256;

    /// <summary>Writes <c>{"items":[…stored JSON…],"nextCursor":…}</c> with the items as Marten read them.</summary>
    private sealed class RawJsonPage(CursorPageResult page) : IResult
    {
        public Task ExecuteAsync(HttpContext http)
        {
            http.Response.StatusCode = StatusCodes.Status200OK;
            http.Response.ContentType = "application/json; charset=utf-8";
            var next = page.NextCursor is null ? "null" : JsonSerializer.Serialize(page.NextCursor);
            return http.Response.WriteAsync($"{{\"items\":{page.ItemsJson},\"nextCursor\":{next}}}", http.RequestAborted);
        }
    }
}

public static class ListAssignmentEnrolmentsEndpoint
{
    [ProducesResponseType<EnrolmentPage>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [WolverineGet("/assignments/{assignmentId}/enrolments", OperationId = "listAssignmentEnrolments"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Enrolments")]
    [EndpointSummary("The assignment's enrolments, filtered by status and userId, in pages of limit (1–500, default 100) with an opaque cursor.")]
    public static async Task<IResult> Get(string assignmentId, string? status, string? userId, int? limit, string? cursor, IQuerySession session, CancellationToken ct)
    {
        if (!RouteIds.TryGuid(assignmentId, "assignmentId", out var aid, out var problem)) return problem!;
        if (await session.LoadAsync<Assignments.Assignment>(aid, ct) is null) return Problems.NotFound($"There is no assignment {assignmentId}.");
        return await EnrolmentLists.Page(session, aid, userId, status, limit, cursor, ct);
    }
}

public static class ListUserEnrolmentsEndpoint
{
    [ProducesResponseType<EnrolmentPage>(StatusCodes.Status200OK)]
    [WolverineGet("/users/{userId}/enrolments", OperationId = "listUserEnrolments"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Enrolments")]
    [EndpointSummary("The user's enrolments across assignments, filtered by status, paged like the assignment list.")]
    public static async Task<IResult> Get(string userId, string? status, int? limit, string? cursor, IQuerySession session, CancellationToken ct)
    {
        if (!RouteIds.TryExternal(userId, "userId", out var problem)) return problem!;
        return await EnrolmentLists.Page(session, null, userId, status, limit, cursor, ct);
    }
}
