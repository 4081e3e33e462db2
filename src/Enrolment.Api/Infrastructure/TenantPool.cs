using Marten;
using Marten.Storage;
using Npgsql;

namespace Enrolment.Api.Infrastructure;

/// <summary>
/// The pool of shard databases (Marten's sharded tenancy, see <see cref="Persistence"/>) as the service's own SQL sees
/// it. Each tenant lives in one shard; hand-written SQL about a tenant runs on that tenant's database (or on the
/// connection of the session that already holds its transaction), and background work walks every shard.
/// </summary>
public static class TenantPool
{
    /// <summary>
    /// The first shard, always in the pool. It is also the home of the registry documents that are looked up before
    /// a tenant is known (tenant accounts and their secrets, Mimecast keys): a session without a tenant opens here.
    /// </summary>
    public const string HomeShard = "default";

    /// <summary>The tenant's shard database. Fails for a tenant that is not in the pool (never places one).</summary>
    public static async ValueTask<IMartenDatabase> DatabaseOf(this IDocumentStore store, string tenantId)
    {
        // The store's own cached database (one connection pool per shard). With explicit assignment "find or create"
        // never places: an unknown tenant throws. (ShardedTenancy.TryFindDatabase would build a new, uncached database
        // and connection pool for a tenant this node has not cached yet.)
        try
        {
            return await store.Storage.FindOrCreateDatabase(tenantId);
        }
        catch (JasperFx.MultiTenancy.UnknownTenantIdException e)
        {
            throw new InvalidOperationException($"Tenant {tenantId} is in no shard this node knows (mt_tenant_assignments of the master has no row for it, or its shard was added less than Shards:RefreshInterval ago). Create it with `tenants add {tenantId}`.", e);
        }
    }

    /// <summary>The data source of the tenant's shard database.</summary>
    public static async ValueTask<NpgsqlDataSource> DataSourceOf(this IDocumentStore store, string tenantId) =>
        DataSourceOf(await store.DatabaseOf(tenantId));

    /// <summary>A shard database's data source (every database Marten's pool hands out is a PostgreSQL one).</summary>
    public static NpgsqlDataSource DataSourceOf(IMartenDatabase database) => ((Weasel.Postgresql.PostgresqlDatabase)database).DataSource;

    /// <summary>A shard's name in the pool (its database_id in mt_database_pool), for logs and metrics.</summary>
#pragma warning disable CS0618 // Identifier is the pool's database id; Id is the server and database name, which two shards may share
    public static string ShardName(IMartenDatabase database) => database.Identifier;
#pragma warning restore CS0618

    /// <summary>Every shard database of the pool (re-read from the master, so shards added by another node are seen).</summary>
    public static async ValueTask<IReadOnlyList<IMartenDatabase>> Shards(this IDocumentStore store) =>
        await store.Storage.AllDatabases();

    /// <summary>The home shard's database, where the registry documents live.</summary>
    public static ValueTask<IMartenDatabase> HomeDatabase(this IDocumentStore store) =>
        store.Storage.FindOrCreateDatabase(HomeShard);

    /// <summary>A read session on the home shard, for the registry documents (no tenant).</summary>
    public static async ValueTask<IQuerySession> QueryHome(this IDocumentStore store) =>
        store.QuerySession(Marten.Services.SessionOptions.ForDatabase(await store.HomeDatabase()));

    /// <summary>A write session on the home shard, for the registry documents (no tenant).</summary>
    public static async ValueTask<IDocumentSession> OpenHome(this IDocumentStore store) =>
        store.LightweightSession(Marten.Services.SessionOptions.ForDatabase(await store.HomeDatabase()));

    /// <summary>
    /// Places the tenant in the pool and creates its partitions there: in <paramref name="shard"/>, or by the placement
    /// rule, the shard with the fewest tenants that is not marked full (ties: the first name in ordinal order). A tenant
    /// already placed stays where it is. Answers its shard. Marten serializes the writes to the registry with an
    /// advisory lock on the master; two concurrent placements may both choose the same emptiest shard, which only
    /// costs balance.
    /// </summary>
    public static async Task<string> PlaceTenant(this IDocumentStore store, string tenantId, string? shard, CancellationToken ct = default)
    {
        if (await store.ShardOf(tenantId, ct) is { } placed)
        {
            if (shard is not null && shard != placed)
                throw new InvalidOperationException($"Tenant {tenantId} is already in shard {placed}; a tenant is moved with `tenants move`, not placed again.");
            return placed;
        }
        // Reads the pool from the master first: Marten creates a tenant's partitions only in a database it has loaded.
        await store.Shards();
        var pool = await store.ListShards(ct);
        if (shard is null)
            shard = pool.Where(s => !s.IsFull).OrderBy(s => s.TenantCount).ThenBy(s => s.DatabaseId, StringComparer.Ordinal).FirstOrDefault()?.DatabaseId
                    ?? throw new InvalidOperationException($"Every shard of the pool ({string.Join(", ", pool.Select(s => s.DatabaseId))}) is marked full. Add one with `shards add <name> \"<connection string>\"`.");
        else if (pool.All(s => s.DatabaseId != shard))
            throw new InvalidOperationException($"There is no shard '{shard}' in the pool ({string.Join(", ", pool.Select(s => s.DatabaseId))}). Register it first with `shards add {shard} \"<connection string>\"`.");
        await store.Advanced.AddTenantToShardAsync(tenantId, shard, ct);
        return shard;
    }

    /// <summary>The shard a tenant is placed in, or null when it is in none.</summary>
    public static async Task<string?> ShardOf(this IDocumentStore store, string tenantId, CancellationToken ct = default) =>
        await Pool(store).FindDatabaseForTenantAsync(tenantId, ct);

    /// <summary>The pool as the master records it: each shard's id, connection string, tenant count and whether it is full.</summary>
    public static async Task<IReadOnlyList<Weasel.Core.MultiTenancy.PooledDatabase>> ListShards(this IDocumentStore store, CancellationToken ct = default) =>
        await Pool(store).ListDatabasesAsync(ct);

    /// <summary>
    /// A statement lost a race to create the same schema object (a table or index that now exists, a type name taken):
    /// two processes set up a new shard at once. Running the setup again finds the object there.
    /// </summary>
    public static bool IsDuplicateObject(Exception e) => e switch
    {
        PostgresException { SqlState: PostgresErrorCodes.DuplicateTable or PostgresErrorCodes.DuplicateObject or PostgresErrorCodes.UniqueViolation } => true,
        AggregateException a => a.InnerExceptions.Any(IsDuplicateObject),
        _ => e.InnerException is { } inner && IsDuplicateObject(inner),
    };

    private static ShardedTenancy Pool(IDocumentStore store) =>
        store.Options.Tenancy as ShardedTenancy ?? throw new InvalidOperationException("The store is not configured with sharded tenancy (Persistence.AddPersistence).");
}

/// <summary>
/// Re-reads the pool from the master every Shards:RefreshInterval (default 5 s), so this node learns of shards and
/// tenants another node or `shards add` / `tenants add` registered. Until it has, a request of a tenant in a new shard
/// fails (the store is configured with explicit assignment, so it never places an unknown tenant on its own).
/// A shard new to this node also gets Wolverine's side: its inbox and outbox store, and the embedded bus's queue tables
/// (a change writes its integration events into its own shard's queue), which Wolverine otherwise sets up only at start.
/// </summary>
public sealed class ShardPoolRefresh(IDocumentStore store, Wolverine.Runtime.IWolverineRuntime runtime, IConfiguration configuration, ILogger<ShardPoolRefresh> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(configuration.GetValue("Shards:RefreshInterval", TimeSpan.FromSeconds(5)));
        var failing = false;
        // Shards whose Wolverine side this node has set up; the first round sets up all (idempotent: a shard added
        // between this node's start and its first round is caught too).
        var prepared = new HashSet<string>();
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                var shards = (await store.Shards()).Select(TenantPool.ShardName).ToHashSet();
                if (!shards.IsSubsetOf(prepared))
                {
                    var added = string.Join(", ", shards.Except(prepared));
                    try
                    {
                        if (runtime.Storage is Wolverine.Persistence.Durability.MultiTenantedMessageStore messageStore) await messageStore.Source.RefreshAsync();
                        if (runtime.Options.Transports.OfType<Wolverine.Postgresql.Transport.PostgresqlTransport>().FirstOrDefault() is { } transport)
                            foreach (var queue in transport.Queues)
                                await queue.SetupAsync(logger);
                        logger.LogInformation("Shard(s) {Shards} of the pool are served by this node (Wolverine's inbox, outbox and queue tables are set up there).", added);
                        prepared.UnionWith(shards);
                    }
                    catch (Exception e) when (TenantPool.IsDuplicateObject(e))
                    {
                        // `shards add` or another node set up the same tables at the same moment: not a master that is
                        // down. The next round sets up again and finds them.
                        logger.LogInformation("Shard(s) {Shards}: another process created Wolverine's tables there at the same moment ({Error}); set up again at the next refresh.", added, e.Message);
                    }
                }
                if (failing) logger.LogInformation("The shard pool is read from the master again");
                failing = false;
            }
            catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                if (!failing)
                    logger.LogWarning(e, "Cannot read the shard pool from the master database (enrolment_pool.mt_database_pool): shards and tenants added from now on are not seen by this node until it can. Known tenants keep working. Check the master (ConnectionStrings:Enrolment) is up.");
                failing = true;
            }
        }
    }
}
