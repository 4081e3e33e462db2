using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using JasperFx.Events;
using Marten;
using Marten.Events;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Npgsql;
using Wolverine.Http;

namespace Enrolment.Api.Features.Changes;

/// <summary>One enrolment change: one event of an enrolment's stream.</summary>
public sealed record ChangeItem(
    string Cursor,
    string EventType,
    Guid EnrolmentId,
    Guid AssignmentId,
    string UserId,
    string PreviousStatus,
    string NewStatus,
    string? CompletionId,
    Instant OccurredAt,
    long StreamVersion);

/// <summary>A page of the feed; <see cref="NextCursor"/> is always set: poll again with it, now or later.</summary>
public sealed record ChangePage(IReadOnlyList<ChangeItem> Items, string NextCursor);

public static class ListChangesEndpoint
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 1000;

    /// <summary>after=now: an empty page whose nextCursor follows only the changes committed from now on.</summary>
    public const string NowCursor = "now";

    [ProducesResponseType<ChangePage>(StatusCodes.Status200OK)]
    [WolverineGet("/changes", OperationId = "listChanges"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Changes")]
    [EndpointSummary("The tenant's enrolment changes in commit order, from the cursor 'after' (omitted: from the beginning; 'now': an empty page whose nextCursor follows what is committed from now on); filters assignmentId and userId; limit 1–1000 (default 100). Poll again with nextCursor: every committed change is returned exactly once.")]
    public static async Task<IResult> Get(string? after, int? limit, string? assignmentId, string? userId, HttpContext http, IDocumentStore store,
        ChangeFeedEventTypes eventTypes, CancellationToken ct)
    {
        var tenantId = http.User.FindFirst(BasicAuthenticationHandler.TenantClaim)!.Value;
        var errors = new Dictionary<string, string[]>();
        var take = limit ?? DefaultLimit;
        if (take is < 1 or > MaxLimit) errors["limit"] = [$"limit must be between 1 and {MaxLimit}."];
        Guid? assignment = null;
        if (assignmentId is not null)
        {
            if (assignmentId.Length <= 64 && Guid.TryParse(assignmentId, out var a)) assignment = a;
            else errors["assignmentId"] = ["assignmentId must be an id issued by this service (a UUID)."];
        }
        if (userId is not null && !Ids.IsValidExternalId(userId)) errors["userId"] = ["userId must be 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -"];
        var from = FeedPosition.Start;
        var cursorEpoch = 0;
        if (after is not null && after != NowCursor)
        {
            if (ChangeCursor.Decode(after, tenantId, out var cursorError) is { } position) (cursorEpoch, from) = position;
            else errors["after"] = [cursorError!];
        }
        if (errors.Count > 0) return Problems.Validation("The change feed query is not valid.", errors);
        // The tenant's shard: its positions and transaction ids (the cursor's) are that database's.
        var dataSource = await store.DataSourceOf(tenantId);
        var epoch = await ChangeFeedQuery.Epoch(dataSource, tenantId, ct);
        // Nothing of the past: a reader that only wants what happens from now on (a live page) skips the history.
        if (after == NowCursor) return Results.Ok(new ChangePage([], ChangeCursor.Encode(tenantId, epoch, await ChangeFeedQuery.Now(dataSource, ct))));
        if (cursorEpoch > epoch)
            return Problems.Validation("The change feed query is not valid.", new Dictionary<string, string[]> { ["after"] = ["after is a cursor this service did not issue for this tenant's data (it names a later move than the tenant has made)."] });
        // A cursor issued before the tenant's last move: the same place in the copied history (some changes may come again).
        if (cursorEpoch < epoch) from = await ChangeFeedQuery.Translate(dataSource, tenantId, cursorEpoch, from, epoch, ct);

        var read = await ChangeFeedQuery.Read(store, dataSource, tenantId, from, take, eventTypes.Names, assignment, userId, ct);
        var items = await Describe(store, tenantId, epoch, read.Rows, ct);

        // A full page continues after its last item. A short one has read everything below the horizon, and nothing below
        // it can still appear: the next poll may start at the horizon (and, with filters, skips what did not match).
        var next = read.Rows.Count == take
            ? read.Rows[^1].Position
            : FeedPosition.Max(read.Rows.Count > 0 ? read.Rows[^1].Position : from, FeedPosition.BelowHorizon(read.Horizon));
        ChangeFeedMetrics.Served.Add(items.Count);
        return Results.Ok(new ChangePage(items, ChangeCursor.Encode(tenantId, epoch, next)));
    }

    /// <summary>
    /// Each row as a change. Statuses come from the stream's events up to that version, folded with the domain's
    /// <see cref="EnrolmentEvents.StatusAfter"/>; assignment and user from its first event. One round trip for all streams.
    /// </summary>
    private static async Task<List<ChangeItem>> Describe(IDocumentStore store, string tenantId, int epoch, IReadOnlyList<FeedRow> rows, CancellationToken ct)
    {
        if (rows.Count == 0) return [];
        await using var session = store.QuerySession(tenantId);
        var batch = session.CreateBatchQuery();
        var streams = rows.GroupBy(r => r.StreamId)
            .ToDictionary(g => g.Key, g => batch.Events.FetchStream(g.Key, version: g.Max(r => r.Version)));
        await batch.Execute(ct);

        var described = new Dictionary<(Guid, long), ChangeItem>();
        foreach (var (streamId, fetch) in streams)
        {
            var events = (await fetch).Where(e => e.Data is IEnrolmentEvent).ToList();
            var assigned = events.Select(e => e.Data).OfType<EnrolmentAssigned>().FirstOrDefault();
            var status = EnrolmentStatus.Unassigned;
            foreach (var stored in events)
            {
                var (e, version) = ((IEnrolmentEvent)stored.Data, stored.Version);
                var before = status;
                status = EnrolmentEvents.StatusAfter(e, before);
                described[(streamId, version)] = new ChangeItem("", EnrolmentEvents.EventType(e), streamId, assigned?.AssignmentId ?? Guid.Empty,
                    assigned?.UserId ?? "", EnrolmentRules.Lower(before), EnrolmentRules.Lower(status), EnrolmentEvents.CompletionId(e), e.At, version);
            }
        }
        return rows.Where(r => described.ContainsKey((r.StreamId, r.Version)))
            .Select(r => described[(r.StreamId, r.Version)] with { Cursor = ChangeCursor.Encode(tenantId, epoch, r.Position) })
            .ToList();
    }
}
