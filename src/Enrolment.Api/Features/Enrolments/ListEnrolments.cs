using System.Buffers.Text;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using NodaTime;
using Microsoft.AspNetCore.Mvc;
using Wolverine.Http;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>A page of enrolments: <c>{ "items": [...], "nextCursor": null or string }</c>.</summary>
public sealed record EnrolmentPage(IReadOnlyList<EnrolmentView> Items, string? NextCursor);

/// <summary>
/// Keyset paging by enrolment id: a page is an index range scan whatever the total, and its items are the stored
/// JSON (minus internal properties) written to the response as it is. The cursor is opaque to clients.
/// </summary>
public static class EnrolmentLists
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 500;
    private static readonly EnrolmentStatus[] Listable = [EnrolmentStatus.Scheduled, EnrolmentStatus.Open, EnrolmentStatus.Overdue, EnrolmentStatus.Complete, EnrolmentStatus.Archived];
    private const string BadCursor = "cursor is not one this service issued: pass nextCursor from the previous page as it is.";

    public const string CsvColumns = "enrolmentId,userId,assignmentId,audienceId,primaryContentId,status,availableDate,dueDate,lastCompletedAt,late,waived,updatedAt";

    public static async Task<IResult> Page(HttpRequest request, EnrolmentTable table, string tenantId, Guid? assignmentId, string? userId, string? status, string? updatedAtFrom, string? updatedAtTo,
        int? limit, string? cursor, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        var filter = ParseFilter(assignmentId, userId, status, updatedAtFrom, updatedAtTo, errors);
        var take = limit ?? DefaultLimit;
        if (take is < 1 or > MaxLimit) errors["limit"] = [$"limit must be between 1 and {MaxLimit}."];
        Guid? after = null;
        if (cursor is not null)
        {
            if (Cursors.TryDecode(cursor, out var id)) after = id;
            else errors["cursor"] = [BadCursor];
        }
        if (filter is null || errors.Count > 0) return Problems.Validation("The list query is not valid.", errors);
        if (Csv.Wanted(request)) return CsvList.Answer(table, tenantId, filter);

        var (items, more) = await table.Page(tenantId, filter, after, take, ct);
        return new RawJsonPage(items.Select(i => i.Json), more ? Cursors.Encode(items[^1].Id) : null);
    }

    /// <summary>
    /// Reads the filters every enrolment list takes (ours and Thrive's) into <paramref name="errors"/> or a filter:
    /// <c>status</c> is one status or a comma-separated list of them, <c>updatedAtFrom</c> (inclusive) and
    /// <c>updatedAtTo</c> (exclusive) ISO-8601 instants.
    /// </summary>
    public static EnrolmentTable.Filter? ParseFilter(Guid? assignmentId, string? userId, string? status, string? updatedAtFrom, string? updatedAtTo, Dictionary<string, string[]> errors)
    {
        EnrolmentStatus[]? statuses = null;
        if (status is not null && (statuses = ParseStatuses(status)) is null)
            errors["status"] = [$"status must be one of {string.Join(", ", Listable.Select(EnrolmentRules.Lower))}, or several of them separated by commas (status=open,overdue)."];
        if (userId is not null && !Ids.IsValidExternalId(userId)) errors["userId"] = ["userId must be 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -"];
        var from = ParseInstant(updatedAtFrom, "updatedAtFrom", errors);
        var to = ParseInstant(updatedAtTo, "updatedAtTo", errors);
        if (from is { } f && to is { } t && t < f) errors["updatedAtTo"] = ["updatedAtTo must not be before updatedAtFrom."];
        return errors.Count > 0 ? null : new EnrolmentTable.Filter(assignmentId, userId, statuses, from, to);
    }

    /// <summary>An optional instant query parameter, or its error under its name.</summary>
    public static Instant? ParseInstant(string? text, string name, Dictionary<string, string[]> errors)
    {
        if (text is null) return null;
        if (Json.TryParseInstant(text, out var instant)) return instant;
        errors[name] = [$"{name} must be an ISO-8601 instant such as 2023-08-23T09:09:16.076Z."];
        return null;
    }

    /// <summary>One status, or several separated by commas; null when any is not a status a list can show.</summary>
    public static EnrolmentStatus[]? ParseStatuses(string text)
    {
        var result = new List<EnrolmentStatus>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            var match = Listable.Where(s => EnrolmentRules.Lower(s) == part).ToArray();
            if (match.Length == 0) return null;
            result.Add(match[0]);
        }
        return result.Distinct().ToArray();
    }

    /// <summary>Opaque cursors: base64url of a version byte and the last enrolment id of the previous page.</summary>
    public static class Cursors
    {
        private const byte Version = 2;

        public static string Encode(Guid lastId)
        {
            var bytes = new byte[17];
            bytes[0] = Version;
            lastId.TryWriteBytes(bytes.AsSpan(1), bigEndian: true, out _);
            return Base64Url.EncodeToString(bytes);
        }

        public static bool TryDecode(string cursor, out Guid lastId)
        {
            lastId = Guid.Empty;
            if (cursor.Length is 0 or > 64) return false;
            var bytes = new byte[Base64Url.GetMaxDecodedLength(cursor.Length)];
            if (Base64Url.DecodeFromChars(cursor, bytes, out _, out var written) != System.Buffers.OperationStatus.Done || written != 17 || bytes[0] != Version)
                return false;
            lastId = new Guid(bytes.AsSpan(1, 16), bigEndian: true);
            return true;
        }
    }

    /// <summary>
    /// Every enrolment the filter matches as CSV (<see cref="CsvColumns"/>), read a page at a time in id order and
    /// written as it is read, so memory does not grow with the list. <c>late</c>: complete by a completion after the due
    /// date in force; <c>waived</c>: complete by a waiver with no completion since.
    /// </summary>
    private static class CsvList
    {
        private const int PageSize = 1_000;

        public static IResult Answer(EnrolmentTable table, string tenantId, EnrolmentTable.Filter filter) =>
            Csv.Answer("enrolments.csv", CsvColumns, ct => Rows(table, tenantId, filter, ct));

        private static async IAsyncEnumerable<IReadOnlyList<string?>> Rows(EnrolmentTable table, string tenantId, EnrolmentTable.Filter filter,
            [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
        {
            Guid? after = null;
            while (true)
            {
                var (items, more) = await table.Page(tenantId, filter, after, PageSize, ct);
                foreach (var (_, json) in items) yield return Row(json);
                if (!more || items.Count == 0) yield break;
                after = items[^1].Id;
            }
        }

        private static string?[] Row(string json)
        {
            using var document = System.Text.Json.JsonDocument.Parse(json);
            var e = document.RootElement;
            string? Text(string name) => e.TryGetProperty(name, out var v) && v.ValueKind == System.Text.Json.JsonValueKind.String ? v.GetString() : null;
            var status = Text("status");
            // Waived: the latest completion-like entry of the log is a waiver (a completion after it ends the waiver).
            var lastCompletion = e.TryGetProperty("eventLog", out var log)
                ? log.EnumerateArray().Select(entry => entry.TryGetProperty("type", out var t) ? t.GetString() : null)
                    .LastOrDefault(t => t is "enrolment.completed" or "enrolment.waived")
                : null;
            var waived = status == "complete" && lastCompletion == "enrolment.waived";
            var (completedAt, dueDate) = (Text("lastCompletedAt"), Text("dueDate"));
            var late = status == "complete" && !waived && completedAt is not null && dueDate is not null
                && Json.TryParseInstant(completedAt, out var c) && Json.TryParseInstant(dueDate, out var d) && c > d;
            return [Text("id"), Text("userId"), Text("assignmentId"), Text("audienceId"), Text("primaryContentId"), status, Text("availableDate"),
                dueDate, completedAt, late ? "true" : "false", waived ? "true" : "false", Text("updatedAt")];
        }
    }

    /// <summary>Writes <c>{"items":[…stored JSON…],"nextCursor":…}</c> with the items as PostgreSQL sent them.</summary>
    private sealed class RawJsonPage(IEnumerable<string> items, string? nextCursor) : IResult
    {
        public async Task ExecuteAsync(HttpContext http)
        {
            http.Response.StatusCode = StatusCodes.Status200OK;
            http.Response.ContentType = "application/json; charset=utf-8";
            var body = new System.Text.StringBuilder("{\"items\":[");
            var first = true;
            foreach (var item in items)
            {
                if (!first) body.Append(',');
                body.Append(item);
                first = false;
            }
            body.Append("],\"nextCursor\":").Append(nextCursor is null ? "null" : $"\"{nextCursor}\"").Append('}');
            await http.Response.WriteAsync(body.ToString(), http.RequestAborted);
        }
    }
}

public static class ListAssignmentEnrolmentsEndpoint
{
    [ProducesResponseType<EnrolmentPage>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [CsvAnswer(EnrolmentLists.CsvColumns)]
    [WolverineGet("/assignments/{assignmentId}/enrolments", OperationId = "listAssignmentEnrolments"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Enrolments")]
    [EndpointSummary("The assignment's enrolments, filtered by status (one or a comma-separated list), userId and updatedAtFrom (inclusive) / updatedAtTo (exclusive), in pages of limit (1–500, default 100) with an opaque cursor.")]
    public static async Task<IResult> Get(string assignmentId, string? status, string? userId, string? updatedAtFrom, string? updatedAtTo, int? limit, string? cursor,
        HttpRequest request, IQuerySession session, EnrolmentTable table, CancellationToken ct)
    {
        if (!RouteIds.TryGuid(assignmentId, "assignmentId", out var aid, out var problem)) return problem!;
        if (await session.LoadAsync<Assignments.Assignment>(aid, ct) is null) return Problems.NotFound($"There is no assignment {assignmentId}.");
        return await EnrolmentLists.Page(request, table, session.TenantId, aid, userId, status, updatedAtFrom, updatedAtTo, limit, cursor, ct);
    }
}

public static class ListUserEnrolmentsEndpoint
{
    [ProducesResponseType<EnrolmentPage>(StatusCodes.Status200OK)]
    [CsvAnswer(EnrolmentLists.CsvColumns)]
    [WolverineGet("/users/{userId}/enrolments", OperationId = "listUserEnrolments"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Enrolments")]
    [EndpointSummary("The user's enrolments across assignments, filtered by status and updatedAt like the assignment list, paged like it.")]
    public static async Task<IResult> Get(string userId, string? status, string? updatedAtFrom, string? updatedAtTo, int? limit, string? cursor, HttpRequest request, IQuerySession session, EnrolmentTable table, CancellationToken ct)
    {
        if (!RouteIds.TryExternal(userId, "userId", out var problem)) return problem!;
        return await EnrolmentLists.Page(request, table, session.TenantId, null, userId, status, updatedAtFrom, updatedAtTo, limit, cursor, ct);
    }
}
