using Enrolment.Api.Infrastructure;
using JasperFx;
using Marten;
using Wolverine.Runtime;
using Wolverine.Runtime.Agents;

namespace Enrolment.Api.Features.Time;

/// <summary>
/// The time-driven transitions as Wolverine agents (PRODUCT.md, "Scale-out"): one agent per shard database of the pool,
/// `enrolment-transitions://shard/{name}`. Wolverine's leader (elected in the master database) spreads them evenly over
/// the running nodes and, when a node stops sending its health checks, gives its agents to the others (the time is
/// Durability:StaleNodeTimeout plus a health-check period; docs/scale-out.md). A shard added at run time gets an agent at the
/// leader's next evaluation. In Wolverine's Solo mode (one node, the tests) this node runs them all.
/// Transitions:Enabled=false: this node offers none, so none is placed here.
/// </summary>
public sealed class TransitionAgentFamily(IDocumentStore store, TimeDrivenTransitions transitions, ILogger<TransitionAgentFamily> logger) : IAgentFamily
{
    public const string AgentScheme = "enrolment-transitions";

    public string Scheme => AgentScheme;

    public static Uri UriFor(string shard) => new($"{AgentScheme}://shard/{Uri.EscapeDataString(shard)}");

    private static string ShardOf(Uri uri) => Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));

    public async ValueTask<IReadOnlyList<Uri>> AllKnownAgentsAsync() => (await store.Shards()).Select(s => UriFor(TenantPool.ShardName(s))).ToList();

    public async ValueTask<IReadOnlyList<Uri>> SupportedAgentsAsync() => transitions.Settings.Enabled ? await AllKnownAgentsAsync() : [];

    public ValueTask<IAgent> BuildAgentAsync(Uri uri, IWolverineRuntime wolverineRuntime) =>
        ValueTask.FromResult<IAgent>(new ShardTransitionsAgent(uri, ShardOf(uri), store, transitions, logger));

    public ValueTask EvaluateAssignmentsAsync(AssignmentGrid assignments)
    {
        assignments.DistributeEvenly(AgentScheme);
        return ValueTask.CompletedTask;
    }
}

/// <summary>One shard's transitions on this node: a poll every Transitions:PollInterval until Wolverine stops the agent.</summary>
public sealed class ShardTransitionsAgent(Uri uri, string shard, IDocumentStore store, TimeDrivenTransitions transitions, ILogger logger) : IAgent
{
    private CancellationTokenSource? _stopping;
    private Task? _loop;

    public Uri Uri => uri;
    public AgentStatus Status { get; private set; } = AgentStatus.Stopped;
    public string Description => $"Time-driven transitions of shard {shard}";

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Solo mode starts every known agent on its one node, whatever the node supports.
        if (!transitions.Settings.Enabled) { logger.LogInformation("Time-driven transitions are disabled on this node (Transitions:Enabled=false); shard {Shard} gets none here", shard); return Task.CompletedTask; }
        _stopping = new CancellationTokenSource();
        _loop = Task.Run(() => Loop(_stopping.Token), CancellationToken.None);
        Status = AgentStatus.Running;
        logger.LogInformation("Time-driven transitions of shard {Shard} run on this node now (polling every {Interval})", shard, transitions.Settings.PollInterval);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_stopping is null) return;
        await _stopping.CancelAsync();
        try { if (_loop is not null) await _loop.WaitAsync(cancellationToken); } catch (OperationCanceledException) { }
        Status = AgentStatus.Stopped;
        logger.LogInformation("Time-driven transitions of shard {Shard} stopped on this node (Wolverine moved them or the node is stopping)", shard);
    }

    private async Task Loop(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(transitions.Settings.PollInterval);
        Marten.Storage.IMartenDatabase? database = null;
        try
        {
            do
            {
                try
                {
                    // The store's cached database of the shard: no read of the master per poll (a pool database id is
                    // resolved from the pool this node has loaded).
                    database ??= await store.Storage.FindOrCreateDatabase(shard);
                    await transitions.RunShard(database, ct);
                }
                catch (Exception e) when (!ct.IsCancellationRequested)
                {
                    // The shard's server may be down; the next poll tries again and catches up on whatever became due.
                    logger.LogWarning(e, "Applying time-driven transitions in shard {Shard} failed; retrying at the next poll", shard);
                }
            } while (await timer.WaitForNextTickAsync(ct));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
    }
}
