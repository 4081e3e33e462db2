using Enrolment.Api.Features.Assignments;
using Enrolment.Api.Features.Audiences;
using Enrolment.Api.Features.Completions;
using Enrolment.Api.Features.Content;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Features.Operations;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using JasperFx;
using JasperFx.Events;
using JasperFx.Events.Projections;
using Marten;
using Npgsql;
using Weasel.Core;
using Wolverine.Marten;

namespace Enrolment.Api.Infrastructure;

public static class Persistence
{
    public const string ConnectionStringName = "Enrolment";

    /// <summary>
    /// Marten: conjoined multi-tenancy for events and documents (the tenant is a column on every row), the
    /// shared JSON settings, inline projections for every read model, and Wolverine's outbox in the same database.
    /// </summary>
    public static void AddEnrolmentPersistence(this IServiceCollection services, IConfiguration configuration, IHostEnvironment environment)
    {
        var connectionString = configuration.GetConnectionString(ConnectionStringName)
            ?? throw new InvalidOperationException($"ConnectionStrings:{ConnectionStringName} is not set. Set it in appsettings.json or the environment variable ConnectionStrings__{ConnectionStringName}.");

        services.AddSingleton<MartenTables.EnrolmentTable>();
        services.AddHostedService<OneProjectionGuard>();

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
            // Who caused each event (Features/Compliance/EventActors): user name, headers, correlation and causation ids.
            // (EnableAll() leaves the user name out in Marten 9.58, so each is named.)
            opts.Events.MetadataConfig.CorrelationIdEnabled = true;
            opts.Events.MetadataConfig.CausationIdEnabled = true;
            opts.Events.MetadataConfig.HeadersEnabled = true;
            opts.Events.MetadataConfig.UserNameEnabled = true;
            opts.Events.AddEventTypes([.. EnrolmentEvents.Types, typeof(AssignmentCreated), typeof(AssignmentRemoved)]);

            opts.Schema.For<TenantAccount>().SingleTenanted();

            // One document per enrolment: the domain's own fold, projected inline (EnrolmentProjection). Rebuilds
            // (`projections rebuild`) read events in large pages and write each document once per flush window rather
            // than once per page: a stream's three events usually fall in one window.
            opts.Projections.Add(new EnrolmentProjection(), ProjectionLifecycle.Inline, rebuild =>
            {
                rebuild.BatchSize = 5_000;
                rebuild.RebuildFlushThreshold = 20_000;
            });
            opts.Projections.Add(new AssignmentProjection(), ProjectionLifecycle.Inline);
            Features.Summaries.Summaries.Configure(opts);
            MartenTables.EnrolmentTable.Configure(opts);
            // The one writer's serialization points: users, audiences, assignments (Features/Enrolments/EnrolmentWriter).
            opts.Storage.ExtendedSchemaObjects.Add(MartenTables.WriteLockRows.Table());
            Features.Audit.AuditSetup.Configure(opts);
            opts.Schema.For<Assignment>().Duplicate(x => x.AudienceId);
            opts.Schema.For<AudienceMember>().Duplicate(x => x.AudienceId);
            opts.Schema.For<FanOutBatchDone>().Duplicate(x => x.OperationId);
            // Completions recorded before an enrolment existed are looked up by user and content (EarlierCompletions).
            // and Thrive's completion list filters on user, content and completedAt (EarlierCompletions uses the first two).
            Features.Thrive.ListThriveCompletionsEndpoint.IndexCompletionRecords(opts);
            opts.Schema.For<ContentItem>();
        })
        .UseNpgsqlDataSource()
        .UseLightweightSessions()
        .IntegrateWithWolverine();
        Features.Summaries.Summaries.AddSummaryDaemon(marten, configuration);

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
