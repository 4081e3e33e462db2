using Enrolment.Api.Infrastructure;
using System.Diagnostics;
using System.Text.Json;
using Enrolment.Api.Features.Assignments;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using JasperFx.CommandLine;
using JasperFx.Events;
using Marten;
using NodaTime;
using Weasel.Core;

namespace Enrolment.Api.Features.Seeding;

public sealed class SeedInput : NetCoreInput
{
    [Description("How many tenants to spread the enrolments over (default 4)")]
    [FlagAlias("tenants")]
    public int TenantsFlag { get; set; } = 4;

    [Description("How many enrolments to create in total (default 10000); each gets 3 events")]
    [FlagAlias("enrolments")]
    public int EnrolmentsFlag { get; set; } = 10_000;

    [Description("Enrolments per transaction (session mode) or per COPY round (bulk mode); default 5000")]
    [FlagAlias("batch")]
    public int BatchFlag { get; set; } = 5_000;

    [Description("bulk: COPY the events (Marten's bulk event append) and COPY the read models folded by the projections' own code; session: StartStream per enrolment, SaveChanges per batch, inline projections")]
    [FlagAlias("mode")]
    public string ModeFlag { get; set; } = "bulk";

    [Description("Tenant ids are eu-west-1_<label><n>; a second run with the same label adds a new assignment to the same tenants")]
    [FlagAlias("label")]
    public string LabelFlag { get; set; } = "Bench";

    [Description("When > 0: every enrolment is open and due this many seconds from now (to measure simultaneous transitions)")]
    [FlagAlias("due-in")]
    public int DueInFlag { get; set; }

    [Description("How many tenants to seed at once (default 2: PostgreSQL computes each COPY's audit chain on one core)")]
    [FlagAlias("parallel")]
    public int ParallelFlag { get; set; } = 2;

    [Description("A known api/all secret to add to every seeded tenant (default: a new random one, printed)")]
    [FlagAlias("secret")]
    public string SecretFlag { get; set; } = "";
}

/// <summary>
/// Load data for benchmarks and capacity tests, through the service's own write model rather than HTTP one by one:
/// `./build/run.sh seed --tenants 4 --enrolments 1000000`. Per tenant it creates the tenant (with a known or new
/// secret), one assignment (an AssignmentCreated stream), and enrolment streams whose events are decided by
/// <see cref="EnrolmentRules"/>: assigned, reminded, then completed (even users) or reminded again (odd users), so
/// 3 events per enrolment, half complete and half open. Progress goes to stderr; stdout's last line is a JSON
/// summary (tenants with their secret and assignment id, counts, rate) for scripts.
/// The seeded assignments open two days ago and fall due in a year, so no time-driven transition fires meanwhile.
/// Seeding writes no integration events: it is not a business change anyone subscribes to.
/// </summary>
[Description("Seed tenants, assignments and enrolment streams in bulk (benchmarks, capacity tests)", Name = "seed")]
public sealed class SeedCommand : JasperFxAsyncCommand<SeedInput>
{
    public const string ContentId = "bench-content";

    public SeedCommand()
    {
        Usage("Seed the default 10,000 enrolments over 4 tenants");
    }

    public override async Task<bool> Execute(SeedInput input)
    {
        if (input.TenantsFlag < 1 || input.EnrolmentsFlag < 0 || input.BatchFlag < 1)
            return Fail("--tenants and --batch must be at least 1, --enrolments at least 0.");
        if (input.ModeFlag is not ("bulk" or "session")) return Fail("--mode must be bulk or session.");
        if (!System.Text.RegularExpressions.Regex.IsMatch(input.LabelFlag, "^[A-Za-z0-9]{1,32}$")) return Fail("--label must be 1–32 letters or digits.");

        using var host = input.BuildHost();
        var store = (DocumentStore)host.Services.GetRequiredService<IDocumentStore>();
        var clock = host.Services.GetRequiredService<IClock>();
        await store.Storage.ApplyAllConfiguredChangesToDatabaseAsync();

        var secret = string.IsNullOrEmpty(input.SecretFlag) ? Secrets.Generate() : input.SecretFlag;
        var now = clock.GetCurrentInstant();
        var dueAll = input.DueInFlag > 0;
        var schedule = dueAll
            ? new Schedule(now - Duration.FromDays(2), null, now + Duration.FromSeconds(input.DueInFlag), null, Schedule.DefaultTimeZone)
            : new Schedule(now - Duration.FromDays(2), Period.FromDays(365), null, null, Schedule.DefaultTimeZone);
        var audienceId = "bench-" + input.LabelFlag.ToLowerInvariant();

        var total = Stopwatch.StartNew();
        var plan = Enumerable.Range(0, input.TenantsFlag)
            .Select(t => (TenantId: $"eu-west-1_{input.LabelFlag}{t}", Count: input.EnrolmentsFlag / input.TenantsFlag + (t < input.EnrolmentsFlag % input.TenantsFlag ? 1 : 0)))
            .ToList();
        // Tenants are placed one after the other (the pool's registry), then seeded --parallel at a time: each COPY's
        // statement trigger (the audit chain) runs in its PostgreSQL backend, so one tenant at a time leaves a core idle.
        foreach (var (tenantId, _) in plan) await EnsureTenant(store, tenantId, secret, now);
        var seeded = new SeededTenant[plan.Count];
        long events = 0, enrolments = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, plan.Count), new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, input.ParallelFlag) }, async (t, _) =>
        {
            var (tenantId, count) = plan[t];
            var assignmentId = Guid.CreateVersion7();
            await using (var session = store.LightweightSession(tenantId))
            {
                session.Events.StartStream<Assignment>(assignmentId, new AssignmentCreated(assignmentId, audienceId, ContentId, schedule, now));
                await session.SaveChangesAsync();
            }
            // Users are numbered across runs of the same label so a second run (a new assignment) reuses no stream id.
            var firstUser = await store.QuerySession(tenantId).Query<Assignment>().CountAsync() * 10_000_000;

            for (var done = 0; done < count;)
            {
                var size = Math.Min(input.BatchFlag, count - done);
                var decideWatch = Stopwatch.StartNew();
                var streams = Enumerable.Range(done, size)
                    .Select(i => Decide(tenantId, assignmentId, $"user-{firstUser + i}", audienceId, schedule, dueAll ? 1 : i, now))
                    .ToList();
                AddPhase("decide", decideWatch.Elapsed);
                if (input.ModeFlag == "bulk") await Bulk(store, await store.DataSourceOf(tenantId), tenantId, streams, input.BatchFlag);
                else await InSession(store, tenantId, streams);
                done += size;
                var allEvents = Interlocked.Add(ref events, streams.Sum(s => s.Count));
                var all = Interlocked.Add(ref enrolments, size);
                await Console.Error.WriteLineAsync(
                    $"[seed] {tenantId}: {done}/{count} enrolments; total {all}/{input.EnrolmentsFlag}, {allEvents} events, {all / total.Elapsed.TotalSeconds:F0} enrolments/s");
            }
            seeded[t] = new SeededTenant(tenantId, secret, assignmentId, count);
        });
        var tenants = seeded.ToList();
        total.Stop();

        var summary = new
        {
            mode = input.ModeFlag,
            enrolments = input.EnrolmentsFlag,
            events,
            seconds = Math.Round(total.Elapsed.TotalSeconds, 1),
            enrolmentsPerSecond = Math.Round(input.EnrolmentsFlag / total.Elapsed.TotalSeconds),
            eventsPerSecond = Math.Round(events / total.Elapsed.TotalSeconds),
            phaseSeconds = Phases.Where(p => p.Value > 0).ToDictionary(p => p.Key, p => Math.Round(p.Value, 1)),
            contentId = ContentId,
            tenants,
        };
        Console.Out.WriteLine(JsonSerializer.Serialize(summary, JsonSerializerOptions.Web));
        return true;
    }

    public sealed record SeededTenant(string TenantId, string Secret, Guid AssignmentId, int Enrolments);

    /// <summary>One enrolment's events, each decided by the rules from the state the previous ones left.</summary>
    private static List<IEnrolmentEvent> Decide(string tenantId, Guid assignmentId, string userId, string audienceId, Schedule schedule, int i, Instant now)
    {
        var id = Ids.EnrolmentId(tenantId, assignmentId, userId);
        var events = new List<IEnrolmentEvent> { EnrolmentRules.Assign(id, assignmentId, userId, audienceId, ContentId, schedule, now - Duration.FromHours(2)) };
        var state = EnrolmentState.Fold(null, events[0]);
        void Take(Decision d)
        {
            if (d.IsRejected) throw new InvalidOperationException($"The rules refused a seeded event: {d.Rejection!.Message}");
            foreach (var e in d.Events) { events.Add(e); state = EnrolmentState.Fold(state, e); }
        }
        Take(EnrolmentRules.Remind(state, now - Duration.FromHours(1)));
        var at = now - Duration.FromMinutes(30);
        Take(i % 2 == 0
            ? EnrolmentRules.Complete(state, new Completion($"seed-{id:N}", ContentId, at, 80), at)
            : EnrolmentRules.Remind(state, at));
        return events;
    }

    /// <summary>The ordinary write path: the inline projection writes each enrolment document in the same transaction.</summary>
    private static async Task InSession(DocumentStore store, string tenantId, List<List<IEnrolmentEvent>> streams)
    {
        var watch = Stopwatch.StartNew();
        await using var session = store.LightweightSession(tenantId);
        foreach (var s in streams) session.Events.StartStream<EnrolmentState>(s[0].EnrolmentId, s.Cast<object>().ToArray());
        await session.SaveChangesAsync();
        AddPhase("saveChanges", watch.Elapsed);
    }

    /// <summary>Where the seconds went, for the report (seconds per phase, summed over batches and parallel tenants).</summary>
    private static readonly Dictionary<string, double> Phases = new() { ["decide"] = 0, ["eventsCopy"] = 0, ["fold"] = 0, ["documentsCopy"] = 0, ["saveChanges"] = 0 };

    private static void AddPhase(string phase, TimeSpan elapsed)
    {
        lock (Phases) Phases[phase] += elapsed.TotalSeconds;
    }

    /// <summary>
    /// Marten's bulk event append (binary COPY, no inline projections), then each stream's enrolment document, folded in
    /// memory by the domain's fold (what the inline projection writes) and COPYed too.
    /// </summary>
    private static async Task Bulk(DocumentStore store, Npgsql.NpgsqlDataSource dataSource, string tenantId, List<List<IEnrolmentEvent>> streams, int batchSize)
    {
        var actions = streams.Select(s =>
        {
            var action = StreamAction.Start((IEventRegistry)store.Options.Events, s[0].EnrolmentId, s.Cast<object>().ToArray());
            action.AggregateType = typeof(EnrolmentState);
            action.TenantId = tenantId;
            return action;
        }).ToList();
        var watch = Stopwatch.StartNew();
        await store.BulkInsertEventsAsync(tenantId, actions, batchSize * 3);
        AddPhase("eventsCopy", watch.Elapsed);

        watch.Restart();
        var documents = streams.Select(s => EnrolmentState.Replay(s)!).ToList();
        AddPhase("fold", watch.Elapsed);
        watch.Restart();
        await CopyDocuments(store, dataSource, tenantId, documents, streams);
        AddPhase("documentsCopy", watch.Elapsed);
    }

    /// <summary>
    /// The enrolment documents with their stream version in mt_version. Marten's bulk loader writes 1 there, and setting
    /// it afterwards rewrote every row and its seven index entries (the new row version is not HOT: COPY packs the
    /// pages full). So the rows go through a temporary table, Marten's own bulk-loading path: COPY into it, the versions
    /// set there (no index, no WAL), then one INSERT … SELECT into the enrolment table.
    /// </summary>
    private static async Task CopyDocuments(DocumentStore store, Npgsql.NpgsqlDataSource dataSource, string tenantId, List<EnrolmentState> documents, List<List<IEnrolmentEvent>> streams)
    {
        var database = await store.Storage.FindOrCreateDatabase(tenantId);
        var provider = (Marten.Internal.Storage.MartenDocumentProvider<EnrolmentState>)database.Providers.StorageFor<EnrolmentState>();
        var loader = provider.BulkLoader;
        var mapping = ((IDocumentStore)store).Options.FindOrResolveDocumentType(typeof(EnrolmentState));
        var temp = mapping.TableName.Name + "_temp"; // the name Marten's loader gives it (CreateTempTableForCopying)
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        await Execute(connection, loader.CreateTempTableForCopying());
        await loader.LoadIntoTempTableAsync(new Marten.Storage.Tenant(tenantId, database), store.Options.Serializer(), connection, documents, CancellationToken.None);
        await Infrastructure.Sql.NewStreams.SetDocumentVersions(store, connection, tenantId, [.. streams], CancellationToken.None, table: temp);
        // Marten's statement ends "on conflict do nothing": a seeded id is new (users are numbered per run), so a row
        // not inserted would be a bug of the numbering, and the count says so.
        await using (var insert = new Npgsql.NpgsqlCommand(loader.CopyNewDocumentsFromTempTable(), connection))
        {
            var inserted = await insert.ExecuteNonQueryAsync();
            if (inserted != documents.Count) throw new InvalidOperationException($"Seeding {tenantId}: {documents.Count - inserted} of {documents.Count} enrolment documents already existed.");
        }
        await Execute(connection, $"drop table {temp}");
        await tx.CommitAsync();
    }

    private static async Task Execute(Npgsql.NpgsqlConnection connection, string sql)
    {
        await using var command = new Npgsql.NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task EnsureTenant(DocumentStore store, string tenantId, string secret, Instant now)
    {
        // As `tenants add`: placed in the pool (the placement rule chooses its shard), then its account in the home shard.
        await store.PlaceTenant(tenantId, shard: null);
        await using var session = await store.OpenHome();
        var account = await session.LoadAsync<TenantAccount>(tenantId) ?? new TenantAccount { Id = tenantId, CreatedAt = now };
        if (Secrets.Match(account, secret) is not null) return;
        account.Secrets.Add(new ApiSecret { SecretId = Secrets.NewSecretId(), Hash = Secrets.Hash(secret), Scopes = [Scopes.All], CreatedAt = now });
        session.Store(account);
        await session.SaveChangesAsync();
    }

    private static bool Fail(string message)
    {
        Console.Error.WriteLine(message);
        return false;
    }
}
