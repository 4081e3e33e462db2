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

public sealed class TransitionSettings
{
    /// <summary>How often the service looks for enrolments whose time has come. Bounds the lag of a transition.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Enrolments transitioned per transaction.</summary>
    public int BatchSize { get; set; } = 500;

    /// <summary>
    /// Batches applied at the same time, each its own transaction on its own connection: while one waits on
    /// PostgreSQL another uses the CPU. Batches of one round never share an enrolment, so they cannot conflict.
    /// On 2 cores shared with PostgreSQL, 2 was fastest (20,000 due at once: 1 → 37 s, 2 → 22 s, 4 → 25 s, 8 → 23 s)
    /// and cost the least CPU per transition; more pays off when PostgreSQL has cores of its own.
    /// </summary>
    public int MaxParallelBatches { get; set; } = 2;

    /// <summary>
    /// Rest between two rounds of one burst (a round: up to BatchSize × MaxParallelBatches transitions), so requests
    /// get the CPU and connections the transitions would otherwise hold for the whole burst. Zero: no rest.
    /// </summary>
    public TimeSpan PauseBetweenRounds { get; set; } = TimeSpan.Zero;

    /// <summary>Set false to run a node that serves HTTP only (another node must then apply transitions).</summary>
    public bool Enabled { get; set; } = true;
}

/// <summary>
/// Applies the transitions time drives (scheduled → open, open → overdue, recurring roll-overs) with no request.
///
/// Every enrolment's snapshot carries next_transition_at (indexed). Each poll, one node (a PostgreSQL advisory
/// lock elects it; a crashed node's lock goes with its connection) takes what is due in batches, one transaction per
/// batch, and lets the rules decide from the current state: a completion that came first makes the overdue
/// transition a no-op, a trigger that comes twice finds nothing to do, and after downtime the overdue ones are
/// simply due. Optimistic concurrency on each stream means a transition is appended once even if two nodes or a
/// request race for it.
/// </summary>
public sealed class TimeDrivenTransitions(
    EnrolmentTable table,
    NpgsqlDataSource dataSource,
    IServiceScopeFactory scopes,
    IHostApplicationLifetime lifetime,
    IClock clock,
    Microsoft.Extensions.Options.IOptions<TransitionSettings> options,
    ILogger<TimeDrivenTransitions> logger) : BackgroundService
{
    public static readonly Meter Meter = new("Enrolment.Transitions");
    internal static readonly Histogram<double> Lag = Meter.CreateHistogram<double>("enrolment.transition.lag", "ms",
        "Time from the instant a transition was due to the instant its event was recorded.");
    internal static readonly Counter<long> Applied = Meter.CreateCounter<long>("enrolment.transition.applied", "{transition}",
        "Time-driven transitions appended to enrolment streams.");

    // Set by the node that holds the election at its polls; other nodes report no backlog (they do not apply any).
    private static long _backlog = -1;
    internal static readonly ObservableGauge<long> Backlog = Meter.CreateObservableGauge("enrolment.transition.backlog",
        () => Interlocked.Read(ref _backlog) is var b and >= 0 ? [new Measurement<long>(b)] : Array.Empty<Measurement<long>>(),
        "{enrolment}", "Enrolments whose time-driven transition is due and not yet applied, as of the elected node's latest round.");

    // Arbitrary but fixed: the advisory lock key that elects the node applying transitions.
    private const long LockKey = 0x456E726F6C54696D;

    private readonly TransitionSettings _settings = options.Value;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_settings.Enabled) { logger.LogInformation("Time-driven transitions are disabled on this node (Transitions:Enabled=false)"); return; }
        // Wolverine (which applies the transitions) must be running first.
        var started = new TaskCompletionSource();
        await using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        await using (stoppingToken.Register(() => started.TrySetCanceled()))
        {
            try { await started.Task; } catch (TaskCanceledException) { return; }
        }
        logger.LogInformation("Time-driven transitions start: polling every {Interval} in batches of {BatchSize}", _settings.PollInterval, _settings.BatchSize);
        using var timer = new PeriodicTimer(_settings.PollInterval);
        do
        {
            try
            {
                await RunOnce(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { break; }
            catch (Exception e)
            {
                // The database may be down; the next poll tries again and catches up on whatever became due.
                logger.LogWarning(e, "Applying time-driven transitions failed; retrying at the next poll");
            }
        } while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>One poll: while this node holds the lock, apply everything due now. Returns how many transitioned.</summary>
    public async Task<int> RunOnce(CancellationToken ct)
    {
        await using var lockConnection = await dataSource.OpenConnectionAsync(ct);
        await using (var tryLock = new NpgsqlCommand("select pg_try_advisory_lock(@key)", lockConnection))
        {
            tryLock.Parameters.AddWithValue("key", LockKey);
            if (await tryLock.ExecuteScalarAsync(ct) is not true) { Interlocked.Exchange(ref _backlog, -1); return 0; }
        }
        try
        {
            var total = 0;
            var limit = _settings.BatchSize * Math.Max(1, _settings.MaxParallelBatches);
            var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, _settings.MaxParallelBatches), CancellationToken = ct };
            for (var round = 0; round < 1000 && !ct.IsCancellationRequested; round++)
            {
                if (round > 0 && _settings.PauseBetweenRounds > TimeSpan.Zero) await Task.Delay(_settings.PauseBetweenRounds, ct);
                var now = clock.GetCurrentInstant();
                // Counted at the start of a poll, then less what each round took (a count per round costs a burst time).
                if (round == 0) Interlocked.Exchange(ref _backlog, await table.DueCount(lockConnection, now, ct));
                else Interlocked.Exchange(ref _backlog, Math.Max(0, Interlocked.Read(ref _backlog) - limit));
                var due = await table.Due(lockConnection, now, limit, ct);
                if (due.Count == 0) break;
                // One transaction per tenant and batch; the round ends when all its batches have, so the next query
                // sees what they wrote.
                var batches = due.GroupBy(d => d.TenantId)
                    .SelectMany(tenant => tenant.Select(d => d.Id).Chunk(_settings.BatchSize).Select(ids => (TenantId: tenant.Key, Ids: ids)));
                await Parallel.ForEachAsync(batches, parallel, async (batch, token) =>
                    Interlocked.Add(ref total, await ApplyBatch(batch.TenantId, batch.Ids, token)));
                if (due.Count < limit) break;
            }
            Interlocked.Exchange(ref _backlog, await table.DueCount(lockConnection, clock.GetCurrentInstant(), ct));
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

/// <summary>Apply whatever time-driven transitions are due now to these enrolments of the message's tenant.</summary>
public sealed record ApplyDueTransitions(Guid[] EnrolmentIds);

public static class ApplyDueTransitionsHandler
{
    public static async Task<int> Handle(ApplyDueTransitions command, IDocumentSession session, IMessageBus bus, IClock clock, ILogger<ApplyDueTransitions> logger, CancellationToken ct)
    {
        var now = clock.GetCurrentInstant();
        // The state decides: one that is no longer due (completed meanwhile, or ticked by another node) changes nothing.
        static Decision Tick(EnrolmentState state, Instant now) => state.NextTransitionAt is null ? Decision.Nothing : EnrolmentRules.Tick(state, now);

        // Time opens, reschedules and makes overdue; it never completes or reinstates, so it takes no user locks (rule 1).
        var decided = await EnrolmentWriter.Change(session, bus, command.EnrolmentIds, state => Tick(state, now), now, ct);
        var changed = decided.Where(d => d.Changed).Select(d => (Before: d.Before!, d.Decision)).ToList();

        var transitions = changed.Sum(d => d.Decision.Events.Count);
        if (transitions == 0) return 0;
        var lags = changed.Select(d => Math.Max(0, (now - d.Before.NextTransitionAt!.Value).TotalMilliseconds)).ToList();
        foreach (var lag in lags) TimeDrivenTransitions.Lag.Record(lag);
        TimeDrivenTransitions.Applied.Add(transitions);
        logger.LogInformation("Applying {Transitions} time-driven transitions to {Enrolments} enrolments of tenant {TenantId}; worst lag {LagMs:F0} ms",
            transitions, lags.Count, session.TenantId, lags.Max());
        return transitions;
    }
}
