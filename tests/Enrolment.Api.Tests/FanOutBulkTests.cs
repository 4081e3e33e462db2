using Enrolment.Api.Infrastructure;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Features.Mimecast;
using Enrolment.Contracts;
using Enrolment.Domain;
using JasperFx.Events;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Enrolment.Api.Tests;

/// <summary>
/// A fan-out starts new enrolment streams by COPY in its batch's transaction (<see cref="NewEnrolmentStreams"/>).
/// These check that what it writes is what Marten's ordinary append would have written: streams Marten reads,
/// appends to and rebuilds, the inline documents, and one integration event per enrolment in the outbox.
/// </summary>
public sealed class FanOutBulkTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private IDocumentStore Store => Host.Services.GetRequiredService<IDocumentStore>();

    [Fact]
    public async Task Streams_started_by_a_large_fan_out_are_ordinary_marten_streams()
    {
        // Three batches (500, 500, 200): several transactions, each with its own COPY.
        var users = Enumerable.Range(0, 1_200).Select(i => $"bulk-{i:D4}").ToArray();
        await PutContent("c1");
        await SetMembers("a1", users);
        var assignmentId = await CreateAssignment("a1", "c1");
        var assignment = Guid.Parse(assignmentId);

        var listed = await ListAll($"/assignments/{assignmentId}/enrolments");
        Assert.Equal(users, listed.Select(e => e.Str("userId")).Order(StringComparer.Ordinal).ToArray());
        Assert.All(listed, e => Assert.Equal("open", e.Str("status")));

        await using (var query = Store.QuerySession(TenantId))
        {
            // Every stream: one EnrolmentAssigned at version 1, the enrolment's aggregate type (sequences: below).
            var ids = users.Select(u => Ids.EnrolmentId(TenantId, assignment, u)).ToArray();
            foreach (var id in ids.Take(20).Concat(ids.TakeLast(20)))
            {
                var events = await query.Events.FetchStreamAsync(id);
                var only = Assert.Single(events);
                Assert.IsType<EnrolmentAssigned>(only.Data);
                Assert.Equal(1, only.Version);
                Assert.Equal(TenantId, only.TenantId);
                var state = await query.Events.FetchStreamStateAsync(id);
                Assert.NotNull(state);
                Assert.Equal(1, state.Version);
                Assert.Equal(typeof(EnrolmentState), state.AggregateType);

                // The inline documents are what folding the stream gives.
                var fromEvents = EnrolmentState.Replay(events.Select(e => (IEnrolmentEvent)e.Data));
                var stored = await query.LoadAsync<EnrolmentState>(id);
                Assert.Equal(fromEvents!.NextTransitionAt, stored!.NextTransitionAt);
                Assert.Equal(fromEvents.UserId, stored.UserId);
                Assert.Equal(EnrolmentView.From(fromEvents), EnrolmentView.From(stored) with { EventLog = fromEvents.EventLog });
                Assert.Equal(fromEvents.EventLog, stored.EventLog);
            }
            // Sequence numbers are unique across all of them (one per event, from Marten's sequence).
            var sequences = await query.Events.QueryAllRawEvents().Where(e => e.EventTypeName == "enrolment_assigned").Select(e => e.Sequence).ToListAsync();
            Assert.Equal(users.Length, sequences.Distinct().Count());
        }

        // The ordinary write path continues the streams: a completion appends version 2.
        var enrolment = await FindEnrolment(assignmentId, "bulk-0007");
        (await Complete("done-7", "bulk-0007", "c1")).AssertStatus(200);
        var after = await GetEnrolment(assignmentId, enrolment.Str("id"));
        Assert.Equal("complete", after.Str("status"));
        Assert.Equal(["enrolment.assigned", "enrolment.completed"], after["eventLog"]!.AsArray().Select(e => e.Str("eventType")).ToArray());

        // One status-changed integration event per new enrolment went into the outbox, each for stream version 1.
        var published = await PublishedStatusChanges(assignment, users.Length + 1);
        Assert.Equal(users.Length, published.Count(p => p.StreamVersion == 1));
        Assert.All(published.Where(p => p.StreamVersion == 1), p => Assert.Equal(("unassigned", "open", "enrolment.assigned"), (p.PreviousStatus, p.NewStatus, p.EventType)));
    }

    [Fact]
    public async Task Rebuilding_the_view_from_bulk_started_streams_gives_the_stored_views()
    {
        var users = Enumerable.Range(0, 600).Select(i => $"rb-{i:D3}").ToArray();
        await PutContent("c1");
        await SetMembers("a1", users);
        var assignmentId = await CreateAssignment("a1", "c1");
        var before = (await ListAll($"/assignments/{assignmentId}/enrolments")).ToDictionary(e => e.Str("id"), e => e.ToJsonString());

        using (var daemon = await Store.BuildProjectionDaemonAsync(TenantPool.HomeShard)) // the tenant's shard (a daemon per database)
            await daemon.RebuildProjectionAsync<EnrolmentProjection>(TimeSpan.FromMinutes(2), CancellationToken.None);

        var after = (await ListAll($"/assignments/{assignmentId}/enrolments")).ToDictionary(e => e.Str("id"), e => e.ToJsonString());
        Assert.Equal(before.Count, after.Count);
        foreach (var (id, json) in before) Assert.Equal(json, after[id]);
    }

    [Fact]
    public async Task A_batch_whose_copy_meets_an_existing_stream_writes_nothing_and_is_retried()
    {
        await PutContent("c1");
        await SetMembers("a1", ["u1"]);
        var assignmentId = await CreateAssignment("a1", "c1");
        var blocked = Ids.EnrolmentId(TenantId, Guid.Parse(assignmentId), "u5");

        // Another transaction started u5's stream first (as a racing fan-out would): the batch's COPY fails on it.
        var dataSource = Host.Services.GetRequiredService<NpgsqlDataSource>();
        await using (var block = dataSource.CreateCommand("insert into enrolment.mt_streams (tenant_id, id, type, version) values ($1, $2, 'enrolment_state', 0)"))
        {
            block.Parameters.Add(new NpgsqlParameter { Value = TenantId });
            block.Parameters.Add(new NpgsqlParameter { Value = blocked });
            await block.ExecuteNonQueryAsync();
        }
        var added = (await Post("/audiences/a1/members", new { userIds = new[] { "u2", "u3", "u4", "u5", "u6" } })).AssertStatus(202);
        await Task.Delay(TimeSpan.FromSeconds(1.5));

        // Nothing of the batch is there: no stream, event, view or message for u2..u6; the operation is still running.
        Assert.Equal(["u1"], (await ListAll($"/assignments/{assignmentId}/enrolments")).Select(e => e.Str("userId")).ToArray());
        await using (var query = Store.QuerySession(TenantId))
            Assert.Equal(1, await query.Events.QueryAllRawEvents().CountAsync(e => e.EventTypeName == "enrolment_assigned"));
        var operation = (await Get((added.Json["operation"] ?? added.Json).Str("href"))).AssertStatus(200).Json;
        Assert.NotEqual("completed", operation.Str("status"));

        // The other transaction's stream goes away (here: by hand); the retried batch then enrols everyone.
        await using (var unblock = dataSource.CreateCommand("delete from enrolment.mt_streams where tenant_id = $1 and id = $2"))
        {
            unblock.Parameters.Add(new NpgsqlParameter { Value = TenantId });
            unblock.Parameters.Add(new NpgsqlParameter { Value = blocked });
            await unblock.ExecuteNonQueryAsync();
        }
        await WaitForOperation(added, timeout: TimeSpan.FromSeconds(60));
        Assert.Equal(["u1", "u2", "u3", "u4", "u5", "u6"], (await ListAll($"/assignments/{assignmentId}/enrolments")).Select(e => e.Str("userId")).Order().ToArray());
    }

    /// <summary>
    /// The message's JSON inside a stored body: the outbox stores Wolverine's binary envelope, whose headers come
    /// first (their length bytes may be a '{'), then the payload: the JSON object that begins with its messageId.
    /// </summary>
    private static EnrolmentStatusChanged? MessageIn(byte[] body)
    {
        var start = body.AsSpan().IndexOf("{\"messageId\""u8);
        if (start < 0) return null;
        var json = new System.Text.Json.Utf8JsonReader(body.AsSpan(start));
        return System.Text.Json.JsonSerializer.Deserialize<EnrolmentStatusChanged>(ref json, System.Text.Json.JsonSerializerOptions.Web);
    }

    /// <summary>The status-changed messages of this assignment that the outbox holds or has moved to the events queue.</summary>
    private async Task<List<EnrolmentStatusChanged>> PublishedStatusChanges(Guid assignmentId, int expected)
    {
        var dataSource = Host.Services.GetRequiredService<NpgsqlDataSource>();
        var found = new List<EnrolmentStatusChanged>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            found.Clear();
            // In the outbox until sent, then in the events queue (nobody consumes it in these tests).
            foreach (var table in new[] { "enrolment.wolverine_outgoing_envelopes", "wolverine_queues.wolverine_queue_enrolment_events" })
            {
                await using var command = dataSource.CreateCommand($"select body from {table} where message_type like '%StatusChanged%'");
                await using var reader = await command.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    if (MessageIn(reader.GetFieldValue<byte[]>(0)) is { } message && message.AssignmentId == assignmentId) found.Add(message);
                }
            }
            // A message moved between the two reads is seen twice: count each message id once.
            found = found.DistinctBy(m => m.MessageId).ToList();
            if (found.Count >= expected || DateTime.UtcNow > deadline) return found;
            await Task.Delay(200);
        }
    }
}
