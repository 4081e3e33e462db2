using System.Text.Json.Nodes;
using Enrolment.Domain;
using Marten;
using Marten.Services;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NodaTime;

namespace Enrolment.Api.Tests;

/// <summary>GET /changes: every committed change exactly once, in commit order, even when transactions commit out of sequence order.</summary>
public sealed class ChangeFeedTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private sealed record Change(string Cursor, string EventType, string EnrolmentId, string AssignmentId, string UserId, string PreviousStatus,
        string NewStatus, string? CompletionId, string OccurredAt, long StreamVersion);

    private static Change Read(JsonNode n) => new(n.Str("cursor"), n.Str("eventType"), n.Str("enrolmentId"), n.Str("assignmentId"), n.Str("userId"),
        n.Str("previousStatus"), n.Str("newStatus"), n["completionId"]?.GetValue<string>(), n.Str("occurredAt"), n["streamVersion"]!.GetValue<long>());

    /// <summary>One page from the cursor; returns its items and nextCursor (always a string).</summary>
    private async Task<(List<Change> Items, string Next)> Page(string? after, int? limit = null, string query = "", string? auth = null)
    {
        var url = "/changes?" + string.Join("&", new[] { after is null ? null : $"after={Uri.EscapeDataString(after)}", limit is null ? null : $"limit={limit}", query.Length == 0 ? null : query }
            .Where(x => x is not null));
        var response = (await Get(url, auth)).AssertStatus(200);
        var next = response.Json["nextCursor"]!.GetValue<string>();
        Assert.False(string.IsNullOrEmpty(next), $"nextCursor is always a string: {response}");
        return (response.Json["items"]!.AsArray().Select(i => Read(i!)).ToList(), next);
    }

    /// <summary>Follows the feed from the cursor until a page comes back empty.</summary>
    private async Task<(List<Change> Items, string Next)> Drain(string? after, int limit = 1000, string query = "")
    {
        var all = new List<Change>();
        for (var i = 0; i < 10_000; i++)
        {
            var (items, next) = await Page(after, limit, query);
            all.AddRange(items);
            after = next;
            if (items.Count == 0) return (all, after);
        }
        throw new Xunit.Sdk.XunitException("The feed did not run dry.");
    }

    /// <summary>Every event of the tenant's enrolment streams as (enrolment, version), read from the store.</summary>
    private async Task<List<(string, long)>> StoredEnrolmentEvents(string tenantId = TenantId)
    {
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        await using var session = store.QuerySession(tenantId);
        var events = await session.Events.QueryAllRawEvents().ToListAsync();
        return events.Where(e => e.Data is IEnrolmentEvent).Select(e => (e.StreamId.ToString(), e.Version)).ToList();
    }

    [Fact]
    public async Task After_now_skips_the_history_and_follows_what_is_committed_from_then_on()
    {
        var assignmentId = await OpenAssignmentFor("dora", "eve");
        // Until the feed's horizon has passed both enrolments' creation (a transaction of another test may hold it back
        // a moment): a horizon never moves back, so "now" is then after them.
        for (var i = 0; (await Drain(null)).Items.Count(c => c.AssignmentId == assignmentId) < 2; i++)
        {
            Assert.True(i < 100, "the two enrolments never showed in the feed");
            await Task.Delay(100);
        }

        var (page, now) = await Page(ListChangesNow);
        Assert.Empty(page);
        (await Complete("c-now", "dora", "c1")).AssertStatus(200);

        List<Change> mine = [];
        for (var i = 0; mine.Count == 0 && i < 100; i++)
        {
            mine = (await Drain(now)).Items.Where(c => c.AssignmentId == assignmentId).ToList();
            if (mine.Count == 0) await Task.Delay(100);
        }
        // The completion, and nothing of the history before "now" (the two assignments).
        Assert.Equal([("enrolment.completed", "dora", "c-now")], mine.Select(c => (c.EventType, c.UserId, c.CompletionId)));
    }

    private const string ListChangesNow = Enrolment.Api.Features.Changes.ListChangesEndpoint.NowCursor;

    [Fact]
    public async Task The_feed_returns_every_enrolment_event_once_with_its_statuses_and_pages_by_cursor()
    {
        var assignmentId = await OpenAssignmentFor("alice", "bob", "carol");
        (await Complete("c-1", "alice", "c1")).AssertStatus(200);
        var bob = await EnrolmentIdFor(assignmentId, "bob");
        (await Post($"/assignments/{assignmentId}/enrolments/{bob}/reminders")).AssertStatus(200);
        (await Post($"/assignments/{assignmentId}/enrolments/{bob}/archive")).AssertStatus(200);

        var (all, _) = await Drain(null);
        Assert.Equal(6, all.Count); // three assigned, one completed, one reminded, one archived; no assignment events
        Assert.Equal((await StoredEnrolmentEvents()).OrderBy(x => x), all.Select(c => (c.EnrolmentId, c.StreamVersion)).OrderBy(x => x));

        var alice = await EnrolmentIdFor(assignmentId, "alice");
        var aliceChanges = all.Where(c => c.EnrolmentId == alice).ToList();
        Assert.Equal([("enrolment.assigned", "unassigned", "open", 1L), ("enrolment.completed", "open", "complete", 2L)],
            aliceChanges.Select(c => (c.EventType, c.PreviousStatus, c.NewStatus, c.StreamVersion)));
        Assert.Equal("c-1", aliceChanges[1].CompletionId);
        Assert.All(all, c => Assert.Equal(assignmentId, c.AssignmentId));
        Assert.All(all, c => Assert.Matches(Scenarios.InstantFormat, c.OccurredAt));
        Assert.Equal([("enrolment.assigned", "unassigned", "open"), ("enrolment.reminded", "open", "open"), ("enrolment.archived", "open", "archived")],
            all.Where(c => c.UserId == "bob").Select(c => (c.EventType, c.PreviousStatus, c.NewStatus)));

        // Pages of two, following nextCursor, give the same changes in the same order; so does resuming from any item's cursor.
        var paged = new List<Change>();
        string? cursor = null;
        for (var i = 0; i < 10; i++)
        {
            var (items, next) = await Page(cursor, limit: 2);
            Assert.True(items.Count <= 2);
            paged.AddRange(items);
            cursor = next;
            if (items.Count == 0) break;
        }
        Assert.Equal(all, paged);
        Assert.Equal(all.Skip(3), (await Drain(all[2].Cursor)).Items);

        // Caught up: the same cursor answers nothing, until the next change, which it then answers alone.
        var (caughtUp, tail) = await Drain(null);
        Assert.Empty((await Page(tail)).Items);
        (await Post($"/assignments/{assignmentId}/enrolments/{alice}/reminders")).AssertStatus(200);
        var (after, _) = await Drain(tail);
        Assert.Equal([("enrolment.reminded", alice, 3L)], after.Select(c => (c.EventType, c.EnrolmentId, c.StreamVersion)));
        Assert.Equal(6, caughtUp.Count);

        // The feed's lag and what it served are in /metrics.
        var metrics = (await Host.Send(HttpMethod.Get, "/metrics", null)).AssertStatus(200).Body;
        Assert.Contains("enrolment_changes_lag_seconds", metrics);
        Assert.Contains("enrolment_changes_served", metrics);
    }

    [Fact]
    public async Task The_feed_filters_on_assignment_and_user()
    {
        var first = await OpenAssignmentFor("alice", "bob");
        await PutContent("c2");
        await SetMembers("a2", ["alice", "dave"]);
        var second = await CreateAssignment("a2", "c2");

        var (byAssignment, _) = await Drain(null, query: $"assignmentId={second}");
        Assert.Equal(2, byAssignment.Count);
        Assert.All(byAssignment, c => Assert.Equal(second, c.AssignmentId));

        var (byUser, _) = await Drain(null, limit: 1, query: "userId=alice");
        Assert.Equal([first, second], byUser.Select(c => c.AssignmentId).Order());
        Assert.All(byUser, c => Assert.Equal("alice", c.UserId));

        var (both, _) = await Drain(null, query: $"userId=bob&assignmentId={first}");
        Assert.Equal("bob", Assert.Single(both).UserId);
        Assert.Empty((await Drain(null, query: $"userId=bob&assignmentId={second}")).Items);
    }

    [Fact]
    public async Task Bad_cursors_limits_and_filters_are_422_and_another_tenants_cursor_too()
    {
        await OpenAssignmentFor("alice");
        var (_, next) = await Page(null);

        foreach (var bad in new[] { "x", "not-a-cursor!", Convert.ToBase64String("1|eu-west-2_TestTenant1|abc|1"u8.ToArray()), new string('A', 300) })
            (await Get($"/changes?after={Uri.EscapeDataString(bad)}")).AssertProblem(422);
        foreach (var query in new[] { "limit=0", "limit=1001", "assignmentId=nope", "userId=" + new string('u', 65), "userId=a%20b" })
            (await Get($"/changes?{query}")).AssertProblem(422);

        const string other = "eu-west-2_OtherTenant9";
        var (otherAll, _, _) = await CreateTenant(other);
        var otherAuth = Basic(other, otherAll);
        var problem = (await Get($"/changes?after={Uri.EscapeDataString(next)}", otherAuth)).AssertProblem(422);
        Assert.Contains("another tenant", problem["errors"]!["after"]![0]!.GetValue<string>());
        var otherFeed = (await Get("/changes", otherAuth)).AssertStatus(200);
        Assert.Empty(otherFeed.Json["items"]!.AsArray());

        (await Get("/changes", Basic(TenantId, WriteSecret))).AssertProblem(403);
        (await Get("/changes", Basic(TenantId, ReadSecret))).AssertStatus(200);
    }

    [Fact]
    public async Task A_slow_transaction_that_commits_after_later_ones_is_seen_once_and_nothing_is_skipped_under_concurrent_writers()
    {
        var users = Enumerable.Range(1, 9).Select(i => $"user{i}").ToArray();
        var assignmentId = await OpenAssignmentFor(users);
        var enrolments = new List<string>();
        foreach (var u in users) enrolments.Add(await EnrolmentIdFor(assignmentId, u));
        var (before, cursor) = await Drain(null);
        Assert.Equal(users.Length, before.Count);

        // The slow writer: a transaction on its own connection appends an event (taking its sequence number now) and stays open.
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        // The service's own data source (NodaTime types), so the session's document upsert can write its instants.
        await using var connection = await Host.Services.GetRequiredService<NpgsqlDataSource>().OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        var slowEnrolment = Guid.Parse(enrolments[0]);
        var options = SessionOptions.ForTransaction(transaction);
        options.TenantId = TenantId;
        await using (var slow = store.LightweightSession(options))
        {
            slow.Events.Append(slowEnrolment, new ReminderRecorded(slowEnrolment, 1, SystemClock.Instance.GetCurrentInstant()));
            await slow.SaveChangesAsync();
        }
        long slowSequence;
        await using (var read = new NpgsqlCommand("select max(seq_id) from enrolment.mt_events where stream_id = @s", connection, transaction))
        {
            read.Parameters.AddWithValue("s", slowEnrolment);
            slowSequence = (long)(await read.ExecuteScalarAsync())!;
        }

        // Concurrent writers commit later events (larger sequence numbers) while a reader follows the feed.
        var seen = new List<Change>();
        using var stop = new CancellationTokenSource();
        var readerCursor = cursor;
        var reader = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var (items, next) = await Page(readerCursor, limit: 7);
                lock (seen) seen.AddRange(items);
                readerCursor = next;
                await Task.Delay(20);
            }
        });
        var writers = enrolments.Skip(1).Select(e => Task.Run(async () =>
        {
            for (var i = 0; i < 4; i++)
                (await Post($"/assignments/{assignmentId}/enrolments/{e}/reminders")).AssertStatus(200);
        })).ToList();
        await Task.WhenAll(writers);
        await Task.Delay(300);

        // The later events are committed, but the open transaction holds them back: none of them may be handed out yet,
        // or the slow event (with its smaller sequence number) would come after a cursor that has passed it.
        var (heldBack, _) = await Drain(cursor);
        Assert.DoesNotContain(heldBack, c => c.EventType == "enrolment.reminded");

        await transaction.CommitAsync();

        var stored = await StoredEnrolmentEvents();
        Assert.Equal(users.Length + 1 + 8 * 4, stored.Count);
        // The slow event committed last, yet most later events have bigger sequence numbers: the out-of-order commit happened.
        await using (var count = new NpgsqlCommand("select count(*) from enrolment.mt_events where tenant_id = @t and seq_id > @s", connection))
        {
            count.Parameters.AddWithValue("t", TenantId);
            count.Parameters.AddWithValue("s", slowSequence);
            Assert.Equal(8L * 4, (long)(await count.ExecuteScalarAsync())!);
        }

        // Let the concurrent reader catch up, then stop it: it has seen every change after its cursor exactly once.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            lock (seen) if (seen.Count >= stored.Count - users.Length) break;
            await Task.Delay(50);
        }
        await stop.CancelAsync();
        await reader;
        var expected = stored.Where(s => s.Item2 > 1).OrderBy(x => x).ToList();
        Assert.Equal(expected, seen.Select(c => (c.EnrolmentId, c.StreamVersion)).OrderBy(x => x));
        Assert.Contains(seen, c => c.EnrolmentId == enrolments[0] && c.EventType == "enrolment.reminded");

        // Within one enrolment, changes come in stream order; from the start, the whole feed is every event once.
        Assert.All(seen.GroupBy(c => c.EnrolmentId), g => Assert.Equal(g.Select(c => c.StreamVersion).Order(), g.Select(c => c.StreamVersion)));
        Assert.Equal(stored.OrderBy(x => x), (await Drain(null)).Items.Select(c => (c.EnrolmentId, c.StreamVersion)).OrderBy(x => x));
    }
}
