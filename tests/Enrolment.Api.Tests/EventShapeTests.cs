using Enrolment.Api.Infrastructure;
using System.Text.Json.Nodes;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using NodaTime;
using Npgsql;

namespace Enrolment.Api.Tests;

/// <summary>
/// An event whose shape changed (ReminderRecorded: <c>number</c> became <c>numberInPeriod</c>) in a store that holds the
/// old shape under the hash chain (docs/architecture.md, "How an event changes shape"). The fixture is two enrolment
/// streams as the version before the change stored them, with the chain links and the answers that version gave. Loaded
/// into the real database, they must fold, verify, export and show as they did, beside events of the new shape
/// written by every write path.
/// </summary>
public sealed class EventShapeTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private static readonly JsonNode Fixture =
        JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "reminders-before-numberInPeriod.json")))!;

    private NpgsqlDataSource Db => Host.Services.GetRequiredService<NpgsqlDataSource>();
    private IDocumentStore Store => Host.Services.GetRequiredService<IDocumentStore>();
    private static string AssignmentId => Fixture.Str("assignmentId");
    private static string[] Enrolments => [.. Fixture["answers"]!.AsObject().Select(p => p.Key)];

    /// <summary>
    /// The fixture's rows as they were, in one statement (the chain's trigger links them as it linked the originals);
    /// only the sequence numbers are new ones of this database, in the original order: the chain does not cover them.
    /// </summary>
    private async Task LoadFixture()
    {
        Assert.Equal(TenantId, Fixture.Str("tenantId"));
        var events = Fixture["events"]!.AsArray().Select(e => e!.DeepClone()).OrderBy(e => e["seq_id"]!.GetValue<long>()).ToList();
        await using var connection = await Db.OpenConnectionAsync();
        var sequence = await NewStreams.NextSequenceValues(connection, "enrolment.mt_events_sequence", events.Count, CancellationToken.None);
        for (var i = 0; i < events.Count; i++) events[i]["seq_id"] = sequence[i];
        foreach (var (table, rows) in new[] { ("mt_streams", Fixture["streams"]!.ToJsonString()), ("mt_events", new JsonArray([.. events]).ToJsonString()) })
        {
            await using var insert = new NpgsqlCommand($"insert into enrolment.{table} select * from jsonb_populate_recordset(null::enrolment.{table}, $1::jsonb)", connection);
            insert.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Jsonb, rows);
            await insert.ExecuteNonQueryAsync();
        }
    }

    private async Task RebuildDocuments()
    {
        var rebuild = new EnrolmentRebuild(Store, Db);
        await rebuild.Resume(restart: true, CancellationToken.None);
        var position = new EnrolmentRebuild.Position("", Guid.Empty, 0, 0, DateTimeOffset.UtcNow);
        while (await rebuild.NextBatch(position, 10, CancellationToken.None) is { } next) position = next;
        await rebuild.Finish(CancellationToken.None);
    }

    /// <summary>The stored rows of a stream: (version, type, data) as PostgreSQL holds them.</summary>
    private async Task<List<(long Version, string Type, JsonNode Data)>> Rows(string enrolmentId)
    {
        await using var command = Db.CreateCommand("select version, type, data::text from enrolment.mt_events where tenant_id = $1 and stream_id = $2 order by version");
        command.Parameters.AddWithValue(TenantId);
        command.Parameters.AddWithValue(Guid.Parse(enrolmentId));
        var rows = new List<(long, string, JsonNode)>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync()) rows.Add((reader.GetInt64(0), reader.GetString(1), JsonNode.Parse(reader.GetString(2))!));
        return rows;
    }

    private static JsonNode WithoutSequence(JsonNode e)
    {
        var copy = e.DeepClone().AsObject();
        copy.Remove("sequence");
        return copy;
    }

    private static void AssertSameJson(JsonNode? expected, JsonNode? actual, string what) =>
        Assert.True(JsonNode.DeepEquals(expected, actual), $"{what}\nexpected: {expected?.ToJsonString()}\nactual:   {actual?.ToJsonString()}");

    [Fact]
    public async Task Reminders_stored_in_the_first_shape_fold_verify_export_and_show_as_before_beside_the_new_shape()
    {
        await LoadFixture();

        // The chain over the old rows, computed now from the stored bytes, is the chain the old version computed.
        await using (var command = Db.CreateCommand("select stream_id, version, hash, previous_hash from enrolment.audit_chain where tenant_id = $1"))
        {
            command.Parameters.AddWithValue(TenantId);
            var chain = new Dictionary<(Guid, long), (string, string)>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync()) chain[(reader.GetGuid(0), reader.GetInt64(1))] = (reader.GetString(2), reader.GetString(3));
            var recorded = Fixture["chain"]!.AsArray();
            Assert.Equal(recorded.Count, chain.Count);
            foreach (var link in recorded)
                Assert.Equal((link.Str("hash"), link.Str("previousHash")), chain[(Guid.Parse(link.Str("streamId")), link!["version"]!.GetValue<long>())]);
        }

        // The rebuild folds the old shape: every enrolment as the old version answered it.
        await RebuildDocuments();
        foreach (var id in Enrolments)
        {
            AssertSameJson(Fixture["answers"]![id]!["enrolment"], await GetEnrolment(AssignmentId, id), $"GET enrolment {id} after the rebuild");
            // GET …/events: old events exactly as they were shown (their sequence numbers are this database's).
            var shown = await Events(AssignmentId, id);
            var before = Fixture["answers"]![id]!["events"]!.AsArray();
            Assert.Equal(before.Count, shown.Count);
            for (var i = 0; i < before.Count; i++) AssertSameJson(WithoutSequence(before[i]!), WithoutSequence(shown[i]!), $"event {i + 1} of {id}");
        }
        var u1 = Enrolments.Single(id => Fixture["answers"]![id]!["enrolment"].Str("userId") == "u1");
        var u2 = Enrolments.Single(id => id != u1);

        // New events in the new shape, by every write path: Marten's append (the reminder route) ...
        var reminded = (await Post($"/assignments/{AssignmentId}/enrolments/{u1}/reminders")).AssertStatus(200).Json;
        Assert.Equal(3, reminded["eventLog"]!.AsArray().Count(e => e.Str("type") == "enrolment.reminded"));
        // ... the set-based append to existing streams ...
        var now = SystemClock.Instance.GetCurrentInstant();
        await using (var session = Store.LightweightSession(TenantId))
        {
            var loaded = await ExistingStreams.Load(session, [Guid.Parse(u1), Guid.Parse(u2)], CancellationToken.None);
            var appends = loaded.Select(l =>
            {
                var events = EnrolmentRules.Remind(l.Value.State, now).Events;
                return new ExistingStreams.Append(l.Key, l.Value.Version, events, events.Aggregate(l.Value.State, EnrolmentState.Fold));
            }).ToList();
            await ExistingStreams.Write(session, appends, now, CancellationToken.None);
            session.Store(new Enrolment.Api.Features.Content.ContentItem { Id = "c-shape" });
            await session.SaveChangesAsync();
        }
        // ... and the set-based start of new streams.
        var copied = Guid.NewGuid();
        await using (var session = Store.LightweightSession(TenantId))
        {
            var schedule = new Schedule(now, Period.FromDays(30), null, null, Schedule.DefaultTimeZone);
            IReadOnlyList<IEnrolmentEvent> stream = [EnrolmentRules.Assign(copied, Guid.Parse(AssignmentId), "u9", "a1", "c1", schedule, now)];
            stream = [.. stream, .. EnrolmentRules.Remind(EnrolmentState.Replay(stream)!, now).Events];
            await NewStreams.Copy(session, [stream], [EnrolmentState.Replay(stream)!], now, CancellationToken.None);
            session.Store(new Enrolment.Api.Features.Content.ContentItem { Id = "c-shape-2" });
            await session.SaveChangesAsync();
        }

        // Stored: the old rows untouched under their old name; every new reminder under the new name, in the new shape.
        var storedBefore = Fixture["events"]!.AsArray();
        foreach (var id in Enrolments.Append(copied.ToString()))
            foreach (var (version, type, data) in await Rows(id))
            {
                var old = storedBefore.SingleOrDefault(e => e.Str("stream_id") == id && e!["version"]!.GetValue<long>() == version);
                if (old is not null)
                {
                    Assert.Equal(old.Str("type"), type);
                    AssertSameJson(old["data"], data, $"stored row {id} v{version}");
                }
                else if (type.StartsWith("reminder", StringComparison.Ordinal))
                {
                    Assert.Equal("reminder_recorded_v2", type);
                    Assert.NotNull(data["numberInPeriod"]);
                    Assert.Null(data["number"]);
                }
            }

        // Both shapes fold into one count of the period's reminders: u1 had 2 old ones, then 2 new ones.
        await using (var query = Store.QuerySession(TenantId))
        {
            var u1State = await query.LoadAsync<EnrolmentState>(Guid.Parse(u1));
            Assert.Equal(4, u1State!.RemindersInPeriod);
            Assert.True(u1State.OnWatchlist);
            var u2State = await query.LoadAsync<EnrolmentState>(Guid.Parse(u2));
            Assert.Equal(3, u2State!.RemindersInPeriod);
            // Marten's own aggregation (through the upcast) gives the documents the writers kept.
            var serializer = Store.Options.Serializer();
            foreach (var (id, state) in new[] { (u1, u1State), (u2, u2State) })
                Assert.Equal(serializer.ToJson(state), serializer.ToJson(await query.Events.AggregateStreamAsync<EnrolmentState>(Guid.Parse(id))));
        }

        // GET …/events: the old events still as they were shown, the new ones in the new shape, one eventType for both.
        var events = await Events(AssignmentId, u1);
        var reminders = events.Where(e => e.Str("eventType") == "enrolment.reminded").Select(e => e!["data"]!).ToList();
        Assert.Equal([1, 2], reminders.Take(2).Select(d => d["number"]!.GetValue<int>()));
        Assert.Equal([3, 4], reminders.Skip(2).Select(d => d["numberInPeriod"]!.GetValue<int>()));
        Assert.All(reminders.Skip(2), d => Assert.Null(d["number"]));
        for (var i = 1; i < events.Count; i++) Assert.Equal(events[i - 1].Str("hash"), events[i].Str("previousHash"));

        // A rebuild folds both shapes to the same documents.
        string Doc(EnrolmentState s) => Store.Options.Serializer().ToJson(s);
        Dictionary<string, string> documents;
        await using (var query = Store.QuerySession(TenantId))
            documents = (await query.Query<EnrolmentState>().ToListAsync()).ToDictionary(s => s.Id.ToString(), Doc);
        await using (var damage = Db.CreateCommand("update enrolment.mt_doc_enrolment set data = jsonb_set(data, '{remindersInPeriod}', '0')"))
            await damage.ExecuteNonQueryAsync();
        await RebuildDocuments();
        await using (var query = Store.QuerySession(TenantId))
            foreach (var state in await query.Query<EnrolmentState>().ToListAsync())
                Assert.Equal(documents[state.Id.ToString()], Doc(state));

        // So does Marten's own rebuild through its daemon, whose type filter must take the old name too.
        await using (var damage = Db.CreateCommand("update enrolment.mt_doc_enrolment set data = jsonb_set(data, '{remindersInPeriod}', '0')"))
            await damage.ExecuteNonQueryAsync();
        using (var daemon = await Store.BuildProjectionDaemonAsync(TenantPool.HomeShard)) // the tenant's shard (a daemon per database)
            await daemon.RebuildProjectionAsync<Enrolment.Api.Features.Enrolments.EnrolmentProjection>(TimeSpan.FromMinutes(2), CancellationToken.None);
        await using (var query = Store.QuerySession(TenantId))
            foreach (var state in await query.Query<EnrolmentState>().ToListAsync())
                Assert.Equal(documents[state.Id.ToString()], Doc(state));

        // The change feed reads the old name too: every reminder of either shape is a change (4 old, 3 new on u1 and u2, 1 copied).
        var changes = (await Get("/changes?limit=1000")).AssertStatus(200).Json["items"]!.AsArray();
        Assert.Equal(4 + 3 + 1, changes.Count(c => c.Str("eventType") == "enrolment.reminded"));

        // `audit verify` holds over both shapes, and so does the shipped verifier over an export of them.
        await AuditChecks.AssertIntact(Host.Services, TenantId);
        var export = (await Get("/audit/export")).AssertStatus(200).Body;
        var (exit, output) = await AuditChecks.RunShippedVerifier(export);
        Assert.True(exit == 0, output);
        var lines = export.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).Where(l => l.Str("kind") == "event").ToList();
        Assert.Contains(lines, l => l.Str("type") == "reminder_recorded" && l["data"]!["number"] is not null);
        Assert.Contains(lines, l => l.Str("type") == "reminder_recorded_v2" && l["data"]!["numberInPeriod"] is not null);
        foreach (var link in Fixture["chain"]!.AsArray())
            Assert.Equal(link.Str("hash"), lines.Single(l => l.Str("streamId") == link.Str("streamId") && l["version"]!.GetValue<long>() == link!["version"]!.GetValue<long>()).Str("hash"));
    }
}
