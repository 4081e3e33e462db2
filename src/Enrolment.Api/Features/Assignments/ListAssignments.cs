using Enrolment.Api.Infrastructure.OpenApi;
using System.Globalization;
using Enrolment.Api.Features.Content;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Features.Summaries;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Npgsql;
using NpgsqlTypes;
using Wolverine.Http;

namespace Enrolment.Api.Features.Assignments;

/// <summary>One assignment of the list: the assignment, its content's title, and its summary numbers.</summary>
public sealed record AssignmentListItem(
    Guid Id, string AudienceId, string PrimaryContentId, string? Title, Instant AvailableDate, Period? CompletionPeriod, Instant? DueDate,
    Period? Recurrence, string TimeZone, AssignmentStatus Status, Instant CreatedAt, Instant? RemovedAt, AssignmentSummaryView Summary);

/// <summary>A page of assignments: <c>{ "items": [...], "nextCursor": null or string }</c>.</summary>
public sealed record AssignmentPage(IReadOnlyList<AssignmentListItem> Items, string? NextCursor);

/// <summary>
/// GET /assignments: the tenant's assignments, newest first, each with its content's title and its summary (the
/// summaries' projection: nothing is counted over the enrolments per request). Keyset paging on the assignment id,
/// which is time-ordered (UUID v7). <c>Accept: text/csv</c> answers every matching assignment as CSV, streamed a page at a time.
/// </summary>
public static class ListAssignmentsEndpoint
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 500;
    private const int CsvPage = 500;
    private const string CsvColumns = "assignmentId,audienceId,primaryContentId,title,status,availableDate,completionPeriod,dueDate,recurrence,timeZone,createdAt,removedAt,total,scheduled,open,overdue,complete,archived,completedOnTime,completedLate,waived,asOf";

    [WolverineGet("/assignments", OperationId = "listAssignments"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Assignments")]
    [EndpointSummary("The tenant's assignments, newest first, each with its content's title and its summary numbers. Filters: status (active or removed), audienceId, contentId. Paged with limit (1–500, default 100) and the opaque cursor nextCursor. With Accept: text/csv, every matching assignment as CSV (no paging).")]
    [ProducesResponseType<AssignmentPage>(StatusCodes.Status200OK, "application/json")]
    [CsvAnswer(CsvColumns)]
    [QueryValues("status", typeof(AssignmentStatus))]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status422UnprocessableEntity, "application/problem+json")]
    public static async Task<IResult> Get(string? status, string? audienceId, string? contentId, int? limit, string? cursor,
        HttpContext http, IQuerySession session, IClock clock, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        if (status is not null && status is not ("active" or "removed")) errors["status"] = ["status must be active or removed."];
        if (audienceId is not null && !Ids.IsValidExternalId(audienceId)) errors["audienceId"] = ["audienceId must be 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -"];
        if (contentId is not null && !Ids.IsValidExternalId(contentId)) errors["contentId"] = ["contentId must be 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -"];
        var take = limit ?? DefaultLimit;
        if (take is < 1 or > MaxLimit) errors["limit"] = [$"limit must be between 1 and {MaxLimit}."];
        Guid? after = null;
        if (cursor is not null)
        {
            if (EnrolmentLists.Cursors.TryDecode(cursor, out var id)) after = id;
            else errors["cursor"] = ["cursor is not one this service issued: pass nextCursor from the previous page as it is."];
        }
        if (errors.Count > 0) return Problems.Validation("The list query is not valid.", errors);

        var filter = new Filter(status, audienceId, contentId);
        var asOf = await Summaries.Summaries.AsOf(session, clock, ct);
        if (Csv.Wanted(http.Request)) return Csv.Answer("assignments.csv", CsvColumns, token => CsvRows(session, filter, asOf, token));

        var assignments = await Page(session, filter, after, take + 1, ct);
        var more = assignments.Count > take;
        var items = await Describe(session, assignments.Take(take).ToList(), asOf, ct);
        return Results.Ok(new AssignmentPage(items, more ? EnrolmentLists.Cursors.Encode(items[^1].Id) : null));
    }

    private sealed record Filter(string? Status, string? AudienceId, string? ContentId);

    /// <summary>One index range scan of the tenant's assignment documents, newest (highest time-ordered id) first.</summary>
    private static async Task<List<Assignment>> Page(IQuerySession session, Filter filter, Guid? after, int take, CancellationToken ct)
    {
        var table = session.DocumentStore.Options.FindOrResolveDocumentType(typeof(Assignment)).TableName.QualifiedName;
        // The session's shard, where the tenant's assignments are.
        await using var command = TenantPool.DataSourceOf(session.Database).CreateCommand(
            $"select data from {table} where tenant_id = $1 and ($2::uuid is null or id < $2) " +
            "and ($3::text is null or data->>'status' = $3) and ($4::text is null or audience_id = $4) " +
            "and ($5::text is null or data->>'primaryContentId' = $5) order by id desc limit $6");
        command.Parameters.Add(new NpgsqlParameter { Value = session.TenantId, NpgsqlDbType = NpgsqlDbType.Varchar });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)after ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)filter.Status ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)filter.AudienceId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)filter.ContentId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = take, NpgsqlDbType = NpgsqlDbType.Integer });
        var serializer = session.DocumentStore.Options.Serializer();
        var result = new List<Assignment>(take);
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) result.Add(serializer.FromJson<Assignment>(reader, 0));
        return result;
    }

    /// <summary>Titles and summaries of one page: two batched lookups by id, whatever the page's size.</summary>
    private static async Task<List<AssignmentListItem>> Describe(IQuerySession session, IReadOnlyList<Assignment> assignments, Instant asOf, CancellationToken ct)
    {
        if (assignments.Count == 0) return [];
        var batch = session.CreateBatchQuery();
        var titles = batch.LoadMany<ContentItem>().ById(assignments.Select(a => a.PrimaryContentId).Distinct().ToArray());
        var summaries = batch.LoadMany<EnrolmentSummary>().ById(assignments.Select(a => EnrolmentSummary.ForAssignment(a.Id)).ToArray());
        await batch.Execute(ct);
        var titleOf = (await titles).ToDictionary(c => c.Id, c => c.Title);
        var summaryOf = (await summaries).ToDictionary(s => s.Id);
        return assignments.Select(a =>
        {
            var s = summaryOf.GetValueOrDefault(EnrolmentSummary.ForAssignment(a.Id));
            var counts = Summaries.Summaries.ByStatus(s);
            var summary = new AssignmentSummaryView(a.Id, Summaries.Summaries.Total(counts), counts, s?.CompletedOnTime ?? 0, s?.CompletedLate ?? 0, s?.Waived ?? 0, asOf);
            return new AssignmentListItem(a.Id, a.AudienceId, a.PrimaryContentId, titleOf.GetValueOrDefault(a.PrimaryContentId), a.AvailableDate, a.CompletionPeriod,
                a.DueDate, a.Recurrence, a.TimeZone, a.Status, a.CreatedAt, a.RemovedAt, summary);
        }).ToList();
    }

    /// <summary>Every matching assignment as CSV, read a page at a time (memory does not grow with the list).</summary>
    private static async IAsyncEnumerable<IReadOnlyList<string?>> CsvRows(IQuerySession session, Filter filter, Instant asOf,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        static string Number(int n) => n.ToString(CultureInfo.InvariantCulture);
        Guid? after = null;
        while (true)
        {
            var page = await Page(session, filter, after, CsvPage, ct);
            if (page.Count == 0) yield break;
            foreach (var a in await Describe(session, page, asOf, ct))
            {
                var s = a.Summary;
                yield return [
                    a.Id.ToString(), a.AudienceId, a.PrimaryContentId, a.Title, Json.Name(a.Status), Json.Format(a.AvailableDate), a.CompletionPeriod?.ToString(),
                    a.DueDate is { } due ? Json.Format(due) : null, a.Recurrence?.ToString(), a.TimeZone, Json.Format(a.CreatedAt),
                    a.RemovedAt is { } removed ? Json.Format(removed) : null, Number(s.Total), Number(s.ByStatus.Scheduled), Number(s.ByStatus.Open),
                    Number(s.ByStatus.Overdue), Number(s.ByStatus.Complete), Number(s.ByStatus.Archived), Number(s.CompletedOnTime),
                    Number(s.CompletedLate), Number(s.Waived), Json.Format(s.AsOf),
                ];
            }
            if (page.Count < CsvPage) yield break;
            after = page[^1].Id;
        }
    }
}
