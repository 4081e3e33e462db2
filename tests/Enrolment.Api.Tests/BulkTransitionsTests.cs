using Enrolment.Api.Infrastructure;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Features.Time;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using JasperFx;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NodaTime;
using Npgsql;
using Wolverine;

namespace Enrolment.Api.Tests;

/// <summary>
/// Time-driven transitions written set-based (<see cref="ExistingStreams"/>), against the real database: each transition
/// once, a completion racing a batch lands before or after it, two writers of one batch, a batch cut off before commit.
/// </summary>
public sealed class BulkTransitionsTests(AppFixture fixture) : ApiTest(fixture)
{
    private IDocumentStore Store => Host.Services.GetRequiredService<IDocumentStore>();
    private static Instant RealNow => SystemClock.Instance.GetCurrentInstant();

    /// <summary>Open enrolments whose due date passed a day ago, started through Marten's own append.</summary>
    private async Task<Guid[]> OverdueEnrolments(int count)
    {
        var now = RealNow;
        var schedule = new Schedule(now - Duration.FromDays(2), Period.FromDays(1), null, null, Schedule.DefaultTimeZone);
        var assignment = Guid.NewGuid();
        var ids = Enumerable.Range(0, count).Select(_ => Guid.NewGuid()).ToArray();
        await using var session = Store.LightweightSession(TenantId);
        for (var i = 0; i < count; i++)
            session.Events.StartStream<EnrolmentState>(ids[i], EnrolmentRules.Enrol(ids[i], assignment, $"u{i}", "a1", "c1", schedule, [], now).Cast<object>().ToArray());
        await session.SaveChangesAsync();
        return ids;
    }

    private async Task<IReadOnlyList<IEnrolmentEvent>> Events(Guid id)
    {
        await using var session = Store.QuerySession(TenantId);
        return (await session.Events.FetchStreamAsync(id)).Select(e => (IEnrolmentEvent)e.Data).ToList();
    }

    private async Task<long> Scalar(string sql, Guid id)
    {
        await using var command = Host.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand(sql);
        command.Parameters.AddWithValue(id);
        return Convert.ToInt64(await command.ExecuteScalarAsync());
    }

    /// <summary>Every stream has its events once and in order, and its stream row and document agree on the version.</summary>
    private async Task AssertConsistent(Guid id)
    {
        var events = await Events(id);
        Assert.Equal(events.Count, await Scalar("select version from enrolment.mt_streams where id = $1", id));
        Assert.Equal(events.Count, await Scalar("select mt_version from enrolment.mt_doc_enrolment where id = $1", id));
        Assert.Equal(events.Count, await Scalar("select count(distinct version) from enrolment.mt_events where stream_id = $1", id));
        await using var session = Store.QuerySession(TenantId);
        Assert.Equal(EnrolmentState.Replay(events), await session.LoadAsync<EnrolmentState>(id), new StateJson(Store));
    }

    private sealed class StateJson(IDocumentStore store) : IEqualityComparer<EnrolmentState?>
    {
        public bool Equals(EnrolmentState? x, EnrolmentState? y) => store.Options.Serializer().ToJson(x) == store.Options.Serializer().ToJson(y);
        public int GetHashCode(EnrolmentState? obj) => 0;
    }

    private TimeDrivenTransitions Poller => Host.Services.GetRequiredService<TimeDrivenTransitions>();

    /// <summary>Reads a batch and writes it set-based in one open session, as the handler does, without committing.</summary>
    private static async Task<IDocumentSession> ReadAndWrite(IDocumentStore store, string tenantId, Guid[] ids, Instant now)
    {
        var session = store.LightweightSession(tenantId);
        var loaded = await ExistingStreams.Load(session, ids, CancellationToken.None);
        var appends = loaded.Select(l =>
        {
            var decision = EnrolmentRules.Tick(l.Value.State, now);
            return new ExistingStreams.Append(l.Key, l.Value.Version, decision.Events, decision.Events.Aggregate(l.Value.State, EnrolmentState.Fold));
        }).ToList();
        await ExistingStreams.Write(session, appends, now, CancellationToken.None);
        return session;
    }

    // Nothing else to save (no outbox envelopes here): ExistingStreams itself makes SaveChangesAsync commit.
    private static Task Commit(IDocumentSession session) => session.SaveChangesAsync();

    [Fact]
    public async Task A_bulk_batch_appends_each_due_transition_once_and_publishes_it()
    {
        var ids = await OverdueEnrolments(30);
        await using var scope = Host.Services.CreateAsyncScope();
        var bus = scope.ServiceProvider.GetRequiredService<IMessageBus>();
        Assert.Equal(30, await bus.InvokeForTenantAsync<int>(TenantId, new ApplyDueTransitions(ids)));
        Assert.Equal(0, await bus.InvokeForTenantAsync<int>(TenantId, new ApplyDueTransitions(ids)));
        foreach (var id in ids)
        {
            Assert.Single((await Events(id)).OfType<EnrolmentBecameOverdue>());
            await AssertConsistent(id);
        }
        // One integration event per transition, a row of the events queue written by the batch's own transaction (the
        // envelope id is the event's messageId), and nothing left for Wolverine's outbox to move after the commit.
        const string queued = "select count(*) from wolverine_queues.wolverine_queue_enrolment_events m where position(convert_to($1::text, 'UTF8') in m.body) > 0 " +
            "and position(convert_to('enrolment.overdue', 'UTF8') in m.body) > 0";
        const string outboxed = "select count(*) from enrolment.wolverine_outgoing_envelopes m where position(convert_to($1::text, 'UTF8') in m.body) > 0";
        const string byId = "select count(*) from wolverine_queues.wolverine_queue_enrolment_events where id = $1";
        foreach (var id in ids)
        {
            Assert.Equal(1, await Scalar(queued, id));
            Assert.Equal(0, await Scalar(outboxed, id));
            Assert.Equal(1, await Scalar(byId, Features.Enrolments.IntegrationEvents.MessageId(TenantId, id, 2)));
        }
        // The listener takes rows by "timestamp": one transaction's rows are apart, in the order they were written.
        var messageIds = ids.Select(id => Features.Enrolments.IntegrationEvents.MessageId(TenantId, id, 2)).ToArray();
        await using (var ordered = Host.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand(
                         "select id from wolverine_queues.wolverine_queue_enrolment_events where id = any($1) order by \"timestamp\", id"))
        {
            ordered.Parameters.AddWithValue(messageIds);
            var inQueueOrder = new List<Guid>();
            await using var reader = await ordered.ExecuteReaderAsync();
            while (await reader.ReadAsync()) inQueueOrder.Add(reader.GetGuid(0));
            Assert.Equal(messageIds, inQueueOrder);
        }
        // The ordinary path reads the bulk-written version back and appends after it.
        await using (var session = Store.LightweightSession(TenantId))
        {
            var stream = await session.Events.FetchForWriting<EnrolmentState>(ids[0]);
            stream.AppendMany(EnrolmentRules.Complete(stream.Aggregate!, new Completion("late", "c1", RealNow, 1), RealNow).Events.Cast<object>().ToArray());
            await session.SaveChangesAsync();
        }
        Assert.Contains(await Events(ids[0]), e => e is EnrolmentCompleted { Late: true });
        await AssertConsistent(ids[0]);
    }

    [Fact]
    public async Task A_completion_committed_between_a_batchs_read_and_write_fails_the_batch_and_wins_without_an_overdue()
    {
        var ids = await OverdueEnrolments(5);
        // The batch reads the states; before it writes, a completion of one of them commits.
        await using (var batch = Store.LightweightSession(TenantId))
        {
            var loaded = await ExistingStreams.Load(batch, ids, CancellationToken.None);
            await using (var session = Store.LightweightSession(TenantId))
            {
                var stream = await session.Events.FetchForWriting<EnrolmentState>(ids[0]);
                stream.AppendMany(EnrolmentRules.Complete(stream.Aggregate!, new Completion("raced", "c1", RealNow, 1), RealNow).Events.Cast<object>().ToArray());
                await session.SaveChangesAsync();
            }
            var appends = loaded.Select(l =>
            {
                var decision = EnrolmentRules.Tick(l.Value.State, RealNow);
                return new ExistingStreams.Append(l.Key, l.Value.Version, decision.Events, decision.Events.Aggregate(l.Value.State, EnrolmentState.Fold));
            }).ToList();
            // The whole batch fails its version guard: nothing of it is written.
            await Assert.ThrowsAnyAsync<ConcurrencyException>(() => ExistingStreams.Write(batch, appends, RealNow, CancellationToken.None));
        }
        foreach (var id in ids[1..]) Assert.DoesNotContain(await Events(id), e => e is EnrolmentBecameOverdue);

        // The next poll applies the rest; the completed one is no longer due.
        Assert.Equal(4, await Poller.RunOnce(CancellationToken.None));
        var completed = await Events(ids[0]);
        Assert.DoesNotContain(completed, e => e is EnrolmentBecameOverdue);
        Assert.Single(completed.OfType<EnrolmentCompleted>());
        foreach (var id in ids[1..]) Assert.Single((await Events(id)).OfType<EnrolmentBecameOverdue>());
        foreach (var id in ids) await AssertConsistent(id);
    }

    [Fact]
    public async Task A_completion_that_read_the_state_before_a_committed_batch_fails_and_its_retry_is_a_late_completion()
    {
        var ids = await OverdueEnrolments(3);
        await using var completion = Store.LightweightSession(TenantId);
        var stream = await completion.Events.FetchForWriting<EnrolmentState>(ids[0]);
        stream.AppendMany(EnrolmentRules.Complete(stream.Aggregate!, new Completion("raced", "c1", RealNow, 1), RealNow).Events.Cast<object>().ToArray());

        await Commit(await ReadAndWrite(Store, TenantId, ids, RealNow));
        await Assert.ThrowsAnyAsync<Exception>(() => completion.SaveChangesAsync());

        // Retried from the state as it is now: after the overdue transition, so late. Never both on time and overdue, never lost.
        await using (var retry = Store.LightweightSession(TenantId))
        {
            var again = await retry.Events.FetchForWriting<EnrolmentState>(ids[0]);
            again.AppendMany(EnrolmentRules.Complete(again.Aggregate!, new Completion("raced", "c1", RealNow, 1), RealNow).Events.Cast<object>().ToArray());
            await retry.SaveChangesAsync();
        }
        var events = await Events(ids[0]);
        Assert.Single(events.OfType<EnrolmentBecameOverdue>());
        Assert.True(Assert.Single(events.OfType<EnrolmentCompleted>()).Late);
        foreach (var id in ids) await AssertConsistent(id);
    }

    [Fact]
    public async Task Two_nodes_writing_the_same_batch_append_it_once()
    {
        var ids = await OverdueEnrolments(20);
        var first = await ReadAndWrite(Store, TenantId, ids, RealNow);
        // The second read the same versions (before the first committed); its events wait on the first's uncommitted ones.
        await using var second = Store.LightweightSession(TenantId);
        var loaded = await ExistingStreams.Load(second, ids, CancellationToken.None);
        var appends = loaded.Select(l =>
        {
            var decision = EnrolmentRules.Tick(l.Value.State, RealNow);
            return new ExistingStreams.Append(l.Key, l.Value.Version, decision.Events, decision.Events.Aggregate(l.Value.State, EnrolmentState.Fold));
        }).ToList();
        var racing = ExistingStreams.Write(second, appends, RealNow, CancellationToken.None);
        await Task.Delay(300);
        Assert.False(racing.IsCompleted, "the second batch waits for the first to commit or roll back");
        await Commit(first);
        await first.DisposeAsync();
        await Assert.ThrowsAnyAsync<ConcurrencyException>(() => racing);

        foreach (var id in ids)
        {
            Assert.Single((await Events(id)).OfType<EnrolmentBecameOverdue>());
            await AssertConsistent(id);
        }
    }

    [Fact]
    public async Task A_batch_cut_off_before_its_commit_leaves_nothing_and_is_applied_once_afterwards()
    {
        var ids = await OverdueEnrolments(10);
        var crashed = await ReadAndWrite(Store, TenantId, ids, RealNow);
        await crashed.DisposeAsync(); // the process died before commit: the connection goes, the transaction with it
        foreach (var id in ids) Assert.DoesNotContain(await Events(id), e => e is EnrolmentBecameOverdue);

        Assert.Equal(10, await Poller.RunOnce(CancellationToken.None));
        Assert.Equal(0, await Poller.RunOnce(CancellationToken.None));
        foreach (var id in ids)
        {
            Assert.Single((await Events(id)).OfType<EnrolmentBecameOverdue>());
            await AssertConsistent(id);
        }
    }

    [Fact]
    public async Task The_backlog_of_due_transitions_is_counted_and_reported_in_metrics()
    {
        var ids = await OverdueEnrolments(12);
        var table = Host.Services.GetRequiredService<EnrolmentTable>();
        await using (var connection = await Host.Services.GetRequiredService<NpgsqlDataSource>().OpenConnectionAsync())
            Assert.Equal(12, await table.DueCount(connection, RealNow, CancellationToken.None));

        Assert.Equal(12, await Poller.RunOnce(CancellationToken.None));
        var metrics = await Host.Server.CreateClient().GetStringAsync("/metrics");
        // One series per shard of the pool (ShardTests adds a second one to the test database): the home shard's.
        var line = metrics.Split('\n').Single(l => l.StartsWith("enrolment_transition_backlog", StringComparison.Ordinal) && l.Contains($"shard=\"{TenantPool.HomeShard}\"", StringComparison.Ordinal));
        Assert.Equal("0", line.Split(' ')[^1].Trim());
        Assert.Contains("enrolment_transition_lag", metrics);
        foreach (var id in ids) await AssertConsistent(id);
    }
}
