using System.Buffers.Text;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Marten.Linq.MatchesSql;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Authorization;
using Wolverine.Http;

namespace Enrolment.Api.Features.Enrolments;

public sealed record EnrolmentPage(IReadOnlyList<EnrolmentView> Items, string? NextCursor);

/// <summary>
/// Keyset paging by enrolment id: the cursor is the last id of the previous page, so a page is an index range
/// scan whatever the total. The cursor is opaque to clients (base64url of the id).
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
        Guid after = Guid.Empty;
        if (cursor is not null && !TryDecodeCursor(cursor, out after)) errors["cursor"] = ["cursor is not one this service issued: pass nextCursor from the previous page as it is."];
        if (errors.Count > 0) return Problems.Validation("The list query is not valid.", errors);

        IQueryable<EnrolmentView> query = session.Query<EnrolmentView>();
        if (assignmentId is { } a) query = query.Where(v => v.AssignmentId == a);
        if (userId is not null) query = query.Where(v => v.UserId == userId);
        if (status is not null) query = query.Where(v => v.Status == status);
        if (cursor is not null) query = query.Where(v => v.MatchesSql("d.id > ?", after));
        var rows = await query.OrderBy(v => v.Id).Take(take + 1).ToListAsync(ct);

        var hasMore = rows.Count > take;
        var items = hasMore ? rows.Take(take).ToList() : rows.ToList();
        return Results.Ok(new EnrolmentPage(items, hasMore ? EncodeCursor(items[^1].Id) : null));
    }

    private static string EncodeCursor(Guid id) => Base64Url.EncodeToString(id.ToByteArray(bigEndian: true));

    private static bool TryDecodeCursor(string cursor, out Guid id)
    {
        id = Guid.Empty;
        if (cursor.Length != 22) return false;
        var bytes = new byte[16];
        if (Base64Url.DecodeFromChars(cursor, bytes, out _, out var written) != System.Buffers.OperationStatus.Done || written != 16) return false;
        id = new Guid(bytes, bigEndian: true);
        return true;
    }
}

public static class ListAssignmentEnrolmentsEndpoint
{
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
    [WolverineGet("/users/{userId}/enrolments", OperationId = "listUserEnrolments"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Enrolments")]
    [EndpointSummary("The user's enrolments across assignments, filtered by status, paged like the assignment list.")]
    public static async Task<IResult> Get(string userId, string? status, int? limit, string? cursor, IQuerySession session, CancellationToken ct)
    {
        if (!RouteIds.TryExternal(userId, "userId", out var problem)) return problem!;
        return await EnrolmentLists.Page(session, null, userId, status, limit, cursor, ct);
    }
}
