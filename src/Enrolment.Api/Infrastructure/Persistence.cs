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

        // Owned by the container, so a stopped host closes its connections.
        services.AddNpgsqlDataSource(connectionString, b =>
        {
            b.UseNodaTime();
            // Marten and Wolverine send the same few statements over and over (upserts, appends, outbox moves):
            // prepared once per connection, PostgreSQL stops parsing and planning them every time (a time-driven
            // transition cost PostgreSQL about 40% less CPU). A connection string that says otherwise wins, e.g.
            // "Max Auto Prepare=0" behind a PgBouncer in transaction mode.
            if (!Mentions(connectionString, "MaxAutoPrepare")) b.ConnectionStringBuilder.MaxAutoPrepare = 64;
        });

        var autoMigrate = configuration.GetValue("Database:AutoMigrate", environment.IsDevelopment());
        // Weasel does not know NodaTime's Instant; Npgsql.NodaTime sends it as timestamptz. Needed for Instant members in
        // duplicated columns and LINQ (the updatedAt and completedAt filters of the lists).
        Weasel.Postgresql.PostgresqlProvider.Instance.RegisterMapping(typeof(NodaTime.Instant), "timestamp with time zone", NpgsqlTypes.NpgsqlDbType.TimestampTz);

        var marten = services.AddMarten(opts =>
        {
            opts.DatabaseSchemaName = "enrolment";
            opts.UseSystemTextJsonForSerialization(EnumStorage.AsString, Casing.CamelCase, Json.Configure);
            opts.AutoCreateSchemaObjects = autoMigrate ? AutoCreate.CreateOrUpdate : AutoCreate.None;

            opts.Policies.AllDocumentsAreMultiTenanted();
            opts.Events.TenancyStyle = JasperFx.MultiTenancy.TenancyStyle.Conjoined;
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
        .UseNpgsqlDataSource()
        .UseLightweightSessions()
        .IntegrateWithWolverine();
        // Marten's async daemon (the summaries) on this node: Projections:DaemonMode. Solo (the default): this node
        // projects. With several nodes, leave it Solo on one and set Disabled on the others (Marten's progress check
        // rolls back a page two daemons both applied, but they waste work). HotCold, which elects one node by a
        // PostgreSQL advisory lock, fails with the DistributedLock shim this build uses (STACK.md: "Multiplexing is
        // current incompatible with DbDataSource"); it is the choice where the real Patched.DistributedLock packages restore.
        marten.AddAsyncDaemon(configuration.GetValue("Projections:DaemonMode", JasperFx.Events.Daemon.DaemonMode.Solo));

        // Development (and ./build/run.sh): create or migrate the schema at start. Production: Database:AutoMigrate=false
        // and run `db-apply` (or review `db-patch` output) as a deployment step.
        if (autoMigrate)
        {
            marten.ApplyAllDatabaseChangesOnStartup();
            JasperFx.Resources.ResourceHostExtensions.AddResourceSetupOnStartup(services, JasperFx.Resources.StartupAction.SetupOnly);
        }
    }

    /// <summary>Whether the connection string sets this option (keywords compared without spaces or case, as Npgsql does).</summary>
    private static bool Mentions(string connectionString, string keyword) =>
        new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString }.Keys.Cast<string>()
            .Any(k => k.Replace(" ", "").Equals(keyword, StringComparison.OrdinalIgnoreCase));
}
