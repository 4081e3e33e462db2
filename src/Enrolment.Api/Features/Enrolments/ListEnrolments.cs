using System.Text.Json;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Marten.Linq.CursorPaging;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Authorization;
using NodaTime;
using Wolverine.Http;

namespace Enrolment.Api.Features.Enrolments;

public sealed record EnrolmentPage(IReadOnlyList<EnrolmentView> Items, string? NextCursor);

/// <summary>
/// What a list of enrolments is filtered on, whichever paging serves it (our cursor or Thrive's page numbers):
/// <c>updatedAtFrom</c> inclusive, <c>updatedAtTo</c> exclusive, <c>Statuses</c> any of (empty: all).
/// </summary>
public sealed record EnrolmentFilter(Guid? AssignmentId, string? UserId, IReadOnlyList<string> Statuses, Instant? UpdatedAtFrom, Instant? UpdatedAtTo);

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

    /// <summary>
    /// Reads the filters every enrolment list takes (ours and Thrive's) into <paramref name="errors"/> or a filter:
    /// <c>status</c> is one status or a comma-separated list of them, the <c>updatedAt</c> bounds ISO-8601 instants.
    /// </summary>
    public static EnrolmentFilter? ParseFilter(Guid? assignmentId, string? userId, string? status, string? updatedAtFrom, string? updatedAtTo, Dictionary<string, string[]> errors)
    {
        var statuses = status is null ? [] : status.Split(',', StringSplitOptions.TrimEntries);
        if (statuses.Any(s => !Statuses.Contains(s)))
            errors["status"] = [$"status must be one of {string.Join(", ", Statuses)}, or several of them separated by commas (status=open,overdue)."];
        if (userId is not null && !Ids.IsValidExternalId(userId)) errors["userId"] = ["userId must be 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -"];
        var from = ParseInstant(updatedAtFrom, "updatedAtFrom", errors);
        var to = ParseInstant(updatedAtTo, "updatedAtTo", errors);
        if (from is { } f && to is { } t && t < f) errors["updatedAtTo"] = ["updatedAtTo must not be before updatedAtFrom."];
        return errors.Count > 0 ? null : new EnrolmentFilter(assignmentId, userId, statuses.Distinct().ToArray(), from, to);
    }

    /// <summary>An optional instant query parameter, or its error under its name.</summary>
    public static Instant? ParseInstant(string? text, string name, Dictionary<string, string[]> errors)
    {
        if (text is null) return null;
        if (Json.TryParseInstant(text, out var instant)) return instant;
        errors[name] = [$"{name} must be an ISO-8601 instant such as 2023-08-23T09:09:16.076Z."];
        return null;
    }

    /// <summary>
    /// The one query behind every enrolment list, ordered by enrolment id (stable pages for both kinds of paging).
    /// The filtered columns are indexed (Persistence: assignment/user with status, and with updatedAt).
    /// </summary>
    public static IQueryable<EnrolmentView> Query(IQuerySession session, EnrolmentFilter filter) => Matching(session, filter).OrderBy(v => v.Id);

    /// <summary>The enrolments the filter matches, in no particular order (what a count reads).</summary>
    public static IQueryable<EnrolmentView> Matching(IQuerySession session, EnrolmentFilter filter)
    {
        IQueryable<EnrolmentView> query = session.Query<EnrolmentView>();
        if (filter.AssignmentId is { } a) query = query.Where(v => v.AssignmentId == a);
        if (filter.UserId is { } userId) query = query.Where(v => v.UserId == userId);
        if (filter.Statuses.Count == 1) { var one = filter.Statuses[0]; query = query.Where(v => v.Status == one); }
        else if (filter.Statuses.Count > 1) { var any = filter.Statuses.ToArray(); query = query.Where(v => any.Contains(v.Status)); }
        if (filter.UpdatedAtFrom is { } from) query = query.Where(v => v.UpdatedAt >= from);
        if (filter.UpdatedAtTo is { } to) query = query.Where(v => v.UpdatedAt < to);
        return query;
    }

    public static async Task<IResult> Page(IQuerySession session, Guid? assignmentId, string? userId, string? status, string? updatedAtFrom, string? updatedAtTo,
        int? limit, string? cursor, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        var filter = ParseFilter(assignmentId, userId, status, updatedAtFrom, updatedAtTo, errors);
        var take = limit ?? DefaultLimit;
        if (take is < 1 or > MaxLimit) errors["limit"] = [$"limit must be between 1 and {MaxLimit}."];
        if (cursor is not null && !IsWellFormedCursor(cursor)) errors["cursor"] = [BadCursor];
        if (filter is null || errors.Count > 0) return Problems.Validation("The list query is not valid.", errors);

        CursorPageResult page;
        try
        {
            page = await Query(session, filter).ToJsonPageByCursorAsync(cursor, take, ct);
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
    [WolverineGet("/assignments/{assignmentId}/enrolments", OperationId = "listAssignmentEnrolments"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Enrolments")]
    [EndpointSummary("The assignment's enrolments, filtered by status (one or a comma-separated list), userId and updatedAtFrom (inclusive) / updatedAtTo (exclusive), in pages of limit (1–500, default 100) with an opaque cursor.")]
    public static async Task<IResult> Get(string assignmentId, string? status, string? userId, string? updatedAtFrom, string? updatedAtTo, int? limit, string? cursor,
        IQuerySession session, CancellationToken ct)
    {
        if (!RouteIds.TryGuid(assignmentId, "assignmentId", out var aid, out var problem)) return problem!;
        if (await session.LoadAsync<Assignments.Assignment>(aid, ct) is null) return Problems.NotFound($"There is no assignment {assignmentId}.");
        return await EnrolmentLists.Page(session, aid, userId, status, updatedAtFrom, updatedAtTo, limit, cursor, ct);
    }
}

public static class ListUserEnrolmentsEndpoint
{
    [WolverineGet("/users/{userId}/enrolments", OperationId = "listUserEnrolments"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Enrolments")]
    [EndpointSummary("The user's enrolments across assignments, filtered by status and updatedAt like the assignment list, paged like it.")]
    public static async Task<IResult> Get(string userId, string? status, string? updatedAtFrom, string? updatedAtTo, int? limit, string? cursor, IQuerySession session, CancellationToken ct)
    {
        if (!RouteIds.TryExternal(userId, "userId", out var problem)) return problem!;
        return await EnrolmentLists.Page(session, null, userId, status, updatedAtFrom, updatedAtTo, limit, cursor, ct);
    }
}
