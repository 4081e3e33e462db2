using JasperFx;
using JasperFx.Events;
using Marten;
using Npgsql;
using Weasel.Core;
using Wolverine.Marten;

namespace Enrolment.Api.Infrastructure;

public static class Persistence
{
    public const string ConnectionStringName = "Enrolment";

    /// <summary>
    /// Marten's core: the connection, conjoined multi-tenancy for events and documents (the tenant is a column on every
    /// row), the shared JSON settings, the event store's settings and event types, the async daemon, and Wolverine's
    /// outbox in the same database. Each feature adds its documents, projections and tables in its Configuration.cs.
    /// </summary>
    public static void AddPersistence(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;
        var environment = builder.Environment;
        var connectionString = configuration.GetConnectionString(ConnectionStringName)
            ?? throw new InvalidOperationException($"ConnectionStrings:{ConnectionStringName} is not set. Set it in appsettings.json or the environment variable ConnectionStrings__{ConnectionStringName}.");

        // The master database's data source (the pool registry, Wolverine's node table), owned by the container so a
        // stopped host closes its connections. Tenant data is never read through it: see TenantPool.
        services.AddNpgsqlDataSource(connectionString, b => ConfigureDataSource(b, connectionString));

        var autoMigrate = configuration.GetValue("Database:AutoMigrate", environment.IsDevelopment());
        // Weasel does not know NodaTime's Instant; Npgsql.NodaTime sends it as timestamptz. Needed for Instant members in
        // duplicated columns and LINQ (the updatedAt and completedAt filters of the lists).
        Weasel.Postgresql.PostgresqlProvider.Instance.RegisterMapping(typeof(NodaTime.Instant), "timestamp with time zone", NpgsqlTypes.NpgsqlDbType.TimestampTz);

        var marten = services.AddMarten(opts =>
        {
            opts.DatabaseSchemaName = "enrolment";
            // Marten's sharded tenancy (PRODUCT.md, "Scale-out"): a master database holds the pool of shard databases
            // (mt_database_pool) and which tenant lives where (mt_tenant_assignments); each shard holds its tenants'
            // events and documents, conjoined, one LIST partition per tenant. The embedded default is a pool of one:
            // the master and the shard `default` are the same database, ConnectionStrings:Enrolment, so a local run
            // and the tests run this one code path. `shards add` registers more databases at run time.
            opts.MultiTenantedWithShardedDatabases(pool =>
            {
                pool.ConnectionString = connectionString;
                pool.SchemaName = "enrolment_pool"; // the registry apart from a shard's own tables (DDL in db/ is per shard)
                pool.PartitionSchemaName = "enrolment";
                // The registry's two tables are created even with Database:AutoMigrate=false: without them no command,
                // not even db-patch, can find the shard databases it would patch.
                pool.AutoCreate = AutoCreate.CreateOrUpdate;
                pool.AddDatabase(TenantPool.HomeShard, connectionString);
                // Only `tenants add` places a tenant (TenantPool.PlaceTenant, which holds the placement rule). A session
                // of a tenant in no shard fails rather than placing it, and so does one of a tenant in a shard this
                // node has not loaded yet, where any other rule would move the tenant's registry row (Marten 9.58).
                pool.UseExplicitAssignment();
            });
            // Applies to the data source of every database of the pool (the master and each shard).
            opts.ConfigureNpgsqlDataSourceBuilder(b => ConfigureDataSource(b, connectionString));
            opts.UseSystemTextJsonForSerialization(EnumStorage.AsString, Casing.CamelCase, Json.Configure);
            opts.AutoCreateSchemaObjects = autoMigrate ? AutoCreate.CreateOrUpdate : AutoCreate.None;

            // Marten 9's default: one mt_quick_append_events call per stream, which checks the version FetchForWriting
            // saw and assigns sequence numbers in the database, instead of first reading every stream's state back
            // (Rich). Timestamps still come from this process's clock. Nothing here reads IEvent.Sequence before commit.
            opts.Events.AppendMode = EventAppendMode.QuickWithServerTimestamps;
            // Who caused each event (the Compliance area's EventActors): user name, headers, correlation and causation ids.
            // (EnableAll() leaves the user name out in Marten 9.58, so each is named.)
            opts.Events.MetadataConfig.CorrelationIdEnabled = true;
            opts.Events.MetadataConfig.CausationIdEnabled = true;
            opts.Events.MetadataConfig.HeadersEnabled = true;
            opts.Events.MetadataConfig.UserNameEnabled = true;
            // A rolled-back append (a lost race answered 409, a retried message) leaves a hole in the event sequence. The
            // async daemon (the summaries) stops at a hole until it has been stale this long, then skips it only once
            // Marten's gap-liveness probe finds no open transaction that could still fill it (pg_locks,
            // pg_stat_activity, the snapshot's in-progress ids). A slow transaction is therefore waited for however
            // long it runs, and the threshold only decides how soon a dead hole is given up: Marten's 3 s default made
            // the summaries lag 3 s behind every conflict (issue #32). SummaryTests holds a transaction open for 8x the
            // threshold and checks that its event is still summarised.
            opts.Projections.StaleSequenceThreshold = configuration.GetValue("Projections:StaleSequenceThreshold", TimeSpan.FromMilliseconds(250));
        })
        .UseLightweightSessions()
        // Wolverine keeps its node registry and leader lock in the master, and one inbox/outbox per shard database,
        // so a change's envelopes commit in the tenant's own shard with its events.
        // The summaries' daemon (Projections:DaemonMode). Distributed (the default): Wolverine's elected leader runs each
        // shard database's projection agent on one node and moves it to another when that node dies (once Wolverine
        // ejects it: Durability:StaleNodeTimeout plus two health checks), so every node runs with the same settings. Solo, on each of several nodes, was
        // not safe: Marten stops a daemon's agent at the first page another node applied first, and in the scale-out
        // reliability run all three nodes stopped theirs for one shard, whose summaries then never moved again. Solo
        // remains for a single node (or Disabled for none); HotCold fails with this build's DistributedLock shim
        // (STACK.md: "Multiplexing is current incompatible with DbDataSource").
        .IntegrateWithWolverine(w =>
        {
            w.MainDatabaseConnectionString = connectionString;
            w.UseWolverineManagedEventSubscriptionDistribution = DistributedDaemon(configuration);
        });
        // Wolverine refuses Marten's own daemon beside its distribution.
        if (!DistributedDaemon(configuration))
            marten.AddAsyncDaemon(configuration.GetValue("Projections:DaemonMode", JasperFx.Events.Daemon.DaemonMode.Solo));

        services.AddHostedService<ShardPoolRefresh>();

        // Development (and ./build/run.sh): create or migrate the schema at start. Production: Database:AutoMigrate=false
        // and run `db-apply` (or review `db-patch` output) as a deployment step.
        if (autoMigrate)
        {
            marten.ApplyAllDatabaseChangesOnStartup();
            JasperFx.Resources.ResourceHostExtensions.AddResourceSetupOnStartup(services, JasperFx.Resources.StartupAction.SetupOnly);
        }
    }

    private static bool DistributedDaemon(IConfiguration configuration) =>
        string.Equals(configuration.GetValue("Projections:DaemonMode", "Distributed"), "Distributed", StringComparison.OrdinalIgnoreCase);

    private static void ConfigureDataSource(NpgsqlDataSourceBuilder b, string connectionString)
    {
        b.UseNodaTime();
        // Marten and Wolverine send the same few statements over and over (upserts, appends, outbox moves):
        // prepared once per connection, PostgreSQL stops parsing and planning them every time (a time-driven
        // transition cost PostgreSQL about 40% less CPU). A connection string that says otherwise wins, e.g.
        // "Max Auto Prepare=0" behind a PgBouncer in transaction mode.
        if (!Mentions(b.ConnectionString ?? connectionString, "MaxAutoPrepare")) b.ConnectionStringBuilder.MaxAutoPrepare = 64;
    }

    /// <summary>Whether the connection string sets this option (keywords compared without spaces or case, as Npgsql does).</summary>
    private static bool Mentions(string connectionString, string keyword) =>
        new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString }.Keys.Cast<string>()
            .Any(k => k.Replace(" ", "").Equals(keyword, StringComparison.OrdinalIgnoreCase));
}
