using Enrolment.Api.Infrastructure;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using JasperFx;
using Marten;
using NodaTime;
using Npgsql;
using Wolverine;

namespace Enrolment.Api.Features.Time;

/// <summary>
/// Applies the transitions time drives (scheduled → open, open → overdue, recurring roll-overs) with no request.
///
/// Every enrolment's snapshot carries next_transition_at (indexed). Each shard of the pool has an agent of its own
/// (<see cref="TransitionAgentFamily"/>), which Wolverine's leader places on one node and moves when that node dies. The
/// agent polls its shard; a PostgreSQL advisory lock in that shard still guards each poll (a crashed node's lock goes with
/// its connection), so two nodes that briefly both run the agent, while the leader moves it, never both apply. It takes
/// what is due there in batches, one transaction per
/// batch, and lets the rules decide from the current state: a completion that came first makes the overdue
/// transition a no-op, a trigger that comes twice finds nothing to do, and after downtime the overdue ones are
/// simply due. Optimistic concurrency on each stream means a transition is appended once even if two nodes or a
/// request race for it.
/// </summary>
public sealed class TimeDrivenTransitions(
    EnrolmentTable table,
    Marten.IDocumentStore store,
    IServiceScopeFactory scopes,
    IClock clock,
    Enrolment.Api.Infrastructure.ReadLatency readLatency,
    Microsoft.Extensions.Options.IOptions<TransitionSettings> options,
    ILogger<TimeDrivenTransitions> logger)
{
    public static readonly Meter Meter = new("Enrolment.Transitions");
    internal static readonly Histogram<double> Lag = Meter.CreateHistogram<double>("enrolment.transition.lag", "ms",
        "Time from the instant a transition was due to the instant its event was recorded.");
    internal static readonly Counter<long> Applied = Meter.CreateCounter<long>("enrolment.transition.applied", "{transition}",
        "Time-driven transitions appended to enrolment streams.");

    // Per shard, set by the node that holds that shard's election at its polls; other nodes report no backlog for it.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> _backlogs = new();
    internal static readonly ObservableGauge<long> Backlog = Meter.CreateObservableGauge("enrolment.transition.backlog",
        () => _backlogs.Select(b => new Measurement<long>(b.Value, new KeyValuePair<string, object?>("shard", b.Key))).ToArray(),
        "{enrolment}", "Enrolments whose time-driven transition is due and not yet applied, per shard, as of the elected node's latest round.");

    // Arbitrary but fixed: the advisory lock key that elects, in each shard database, the node applying its transitions.
    private const long LockKey = 0x456E726F6C54696D;

    private readonly TransitionSettings _settings = options.Value;
    private readonly ReadersFirst _readersFirst = new(options.Value.ReadLatencyFactor, Math.Max(1, options.Value.MaxParallelBatches));

    public TransitionSettings Settings => _settings;

    /// <summary>
    /// One poll of one shard (what its agent, <see cref="TransitionAgentFamily"/>, runs every PollInterval): if this node
    /// holds the shard's lock, apply everything due there now. Returns how many transitioned.
    /// </summary>
    public Task<int> RunShard(Marten.Storage.IMartenDatabase shard, CancellationToken ct) =>
        RunIn(Infrastructure.TenantPool.ShardName(shard), Infrastructure.TenantPool.DataSourceOf(shard), ct);

    /// <summary>One poll of every shard whose lock this node holds (tests, and an operator's one-off). Returns how many transitioned.</summary>
    public async Task<int> RunOnce(CancellationToken ct)
    {
        var total = 0;
        foreach (var shard in await store.Shards())
        {
            var name = Infrastructure.TenantPool.ShardName(shard);
            try
            {
                total += await RunIn(name, Infrastructure.TenantPool.DataSourceOf(shard), ct);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                // One shard's server down must not stop the others' transitions.
                logger.LogWarning(e, "Applying time-driven transitions in shard {Shard} failed; retrying at the next poll (the other shards go on)", name);
            }
        }
        return total;
    }

    private async Task<int> RunIn(string shard, NpgsqlDataSource dataSource, CancellationToken ct)
    {
        await using var lockConnection = await dataSource.OpenConnectionAsync(ct);
        await using (var tryLock = new NpgsqlCommand("select pg_try_advisory_lock(@key)", lockConnection))
        {
            tryLock.Parameters.AddWithValue("key", LockKey);
            if (await tryLock.ExecuteScalarAsync(ct) is not true) { _backlogs.TryRemove(shard, out _); return 0; }
        }
        try
        {
            var total = 0;
            for (var round = 0; round < 1000 && !ct.IsCancellationRequested; round++)
            {
                if (round > 0)
                {
                    // Readers first (issue #32): fewer batches at a time and a longer rest while reads are slower than idle.
                    var (p95, reads) = readLatency.Recent(TimeSpan.FromSeconds(1));
                    _readersFirst.BeforeRound(p95, reads);
                    var pause = _readersFirst.Pause > _settings.PauseBetweenRounds ? _readersFirst.Pause : _settings.PauseBetweenRounds;
                    if (pause > TimeSpan.Zero) await Task.Delay(pause, ct);
                }
                var batchesAtOnce = _readersFirst.Parallel;
                var limit = _settings.BatchSize * batchesAtOnce;
                var now = clock.GetCurrentInstant();
                // Counted at the start of a poll, then less what each round took (a count per round costs a burst time).
                var backlog = round == 0 ? await table.DueCount(lockConnection, now, ct) : Math.Max(0, _backlogs.GetValueOrDefault(shard) - limit);
                _backlogs[shard] = backlog;
                var due = await table.Due(lockConnection, now, limit, ct);
                if (due.Count == 0)
                {
                    // Nothing due: what readers see now is the idle latency the bursts are compared with.
                    if (round == 0) { var (p95, reads) = readLatency.Recent(TimeSpan.FromSeconds(5)); _readersFirst.Idle(p95, reads); }
                    break;
                }
                // One transaction per tenant and batch; the round ends when all its batches have, so the next query
                // sees what they wrote.
                var batches = due.GroupBy(d => d.TenantId)
                    .SelectMany(tenant => tenant.Select(d => d.Id).Chunk(_settings.BatchSize).Select(ids => (TenantId: tenant.Key, Ids: ids)));
                var parallel = new ParallelOptions { MaxDegreeOfParallelism = batchesAtOnce, CancellationToken = ct };
                await Parallel.ForEachAsync(batches, parallel, async (batch, token) =>
                    Interlocked.Add(ref total, await ApplyBatch(batch.TenantId, batch.Ids, token)));
                if (due.Count < limit) break;
            }
            _backlogs[shard] = await table.DueCount(lockConnection, clock.GetCurrentInstant(), ct);
            return total;
        }
        finally
        {
            await using var unlock = new NpgsqlCommand("select pg_advisory_unlock(@key)", lockConnection);
            unlock.Parameters.AddWithValue("key", LockKey);
            await unlock.ExecuteScalarAsync(CancellationToken.None);
        }
    }

    private async Task<int> ApplyBatch(string tenantId, Guid[] ids, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var bus = scope.ServiceProvider.GetRequiredService<IMessageBus>();
        // A trace of its own per batch: its events' correlation id (EventActors), so one batch's changes can be found together.
        using var trace = new Activity("enrolment.transitions.batch").SetIdFormat(ActivityIdFormat.W3C).Start();
        try
        {
            // Through Wolverine, so the batch commits in one transaction together with its integration events.
            return await bus.InvokeForTenantAsync<int>(tenantId, new ApplyDueTransitions(ids), ct);
        }
        catch (ConcurrencyException)
        {
            // A request changed one of them meanwhile: redo one by one, so one conflict does not hold up the rest.
            var applied = 0;
            foreach (var id in ids)
            {
                try { applied += await bus.InvokeForTenantAsync<int>(tenantId, new ApplyDueTransitions([id]), ct); }
                catch (ConcurrencyException) { /* still due at the next poll if the state still says so */ }
            }
            return applied;
        }
    }
}

/// <summary>
/// The readers-first budget of the time-driven transitions (<see cref="TransitionSettings.ReadLatencyFactor"/>): how many
/// batches run at a time and how long to rest between rounds, from the API reads' 95th percentile now against the one
/// measured while nothing was due. Lowers both a step at a time while reads are slow, raises them back when they are not.
/// </summary>
public sealed class ReadersFirst(double factor, int maxParallel)
{
    private readonly int _max = maxParallel;
    private static readonly TimeSpan FirstRest = TimeSpan.FromMilliseconds(50), LongestRest = TimeSpan.FromSeconds(1);
    private const int FewestIdleReads = 20, FewestBusyReads = 10;

    /// <summary>The idle 95th percentile in milliseconds (a moving average of the idle polls' samples); 0 before any.</summary>
    public double IdleP95 { get; private set; }
    public int Parallel { get; private set; } = maxParallel;
    public TimeSpan Pause { get; private set; } = TimeSpan.Zero;

    /// <summary>A poll found nothing due: the reads of the last seconds are the idle reference, and the next burst starts at full speed.</summary>
    public void Idle(double p95, int reads)
    {
        (Parallel, Pause) = (_max, TimeSpan.Zero);
        if (reads >= FewestIdleReads) IdleP95 = IdleP95 == 0 ? p95 : 0.8 * IdleP95 + 0.2 * p95;
    }

    /// <summary>Before a round of a burst: slower while the reads of the last second are over the factor times idle.</summary>
    public void BeforeRound(double p95, int reads)
    {
        if (factor <= 0 || IdleP95 <= 0 || reads < FewestBusyReads) return;
        // A floor of 1 ms: on an idle node answering in microseconds, noise alone would be "twice as slow".
        if (p95 > factor * Math.Max(IdleP95, 1.0))
        {
            Parallel = Math.Max(1, Parallel - 1);
            Pause = Pause == TimeSpan.Zero ? FirstRest : Pause * 2 > LongestRest ? LongestRest : Pause * 2;
        }
        else
        {
            Parallel = Math.Min(_max, Parallel + 1);
            Pause = Pause / 2 < FirstRest / 2 ? TimeSpan.Zero : Pause / 2;
        }
    }
}
