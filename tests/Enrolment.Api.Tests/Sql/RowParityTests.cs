using Enrolment.Api.Infrastructure;
using Enrolment.Api.Features.Audiences;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Features.Compliance;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using NodaTime;
using Npgsql;

namespace Enrolment.Api.Tests.Sql;

/// <summary>
/// The code under Infrastructure/Sql writes and reads Marten's tables directly. This compares, column by
/// column, a stream it starts by COPY with the same stream started by Marten's own append: an upgrade of Marten that
/// adds, renames or fills a column differently fails here, not in production.
/// </summary>
public sealed class RowParityTests(AppFixture fixture) : ApiTest(fixture)
{
    private static readonly Actor Actor = new("operation", "op-1", new("secret", "s1"));
    private const string TraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    private static readonly Instant Now = Instant.FromUtc(2026, 1, 5, 9, 0);

    private static IReadOnlyList<IEnrolmentEvent> Stream(Guid id)
    {
        var schedule = new Schedule(Now - Duration.FromDays(1), Period.FromDays(30), null, null, Schedule.DefaultTimeZone);
        var enrolled = EnrolmentRules.Enrol(id, Guid.Parse("0b8f5d0e-8a59-4c52-9a52-4d4a3b1f9c01"), "u1", "a1", "c1", schedule,
            [new Completion("x1", "c1", Now - Duration.FromHours(1), 75)], Now);
        // And a reminder: an event stored under a name that is not Marten's default (StoredEnrolmentEvents).
        return [.. enrolled, .. EnrolmentRules.Remind(EnrolmentState.Replay(enrolled)!, Now).Events];
    }

    /// <summary>Every column but the ones that differ by nature (ids, sequence numbers, timestamps), with the stream id blanked.</summary>
    private async Task<List<string>> Rows(string table, string key, Guid id, params string[] skip)
    {
        var dataSource = Host.Services.GetRequiredService<NpgsqlDataSource>();
        await using var command = dataSource.CreateCommand(
            $"select to_jsonb(t) - $2::text[] from enrolment.{table} t where {key} = $1 order by 1::text");
        command.Parameters.AddWithValue(id);
        command.Parameters.AddWithValue(skip);
        var rows = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync()) rows.Add(reader.GetString(0).Replace(id.ToString(), "<id>"));
        return rows;
    }

    [Fact]
    public async Task An_append_to_existing_streams_set_based_has_the_rows_of_marten_s_own_append()
    {
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        Guid bulk = Guid.NewGuid(), appended = Guid.NewGuid();
        // Open and due for a day; the same tick later goes overdue through each path.
        var schedule = new Schedule(Now - Duration.FromDays(2), Period.FromDays(1), null, null, Schedule.DefaultTimeZone);
        IReadOnlyList<IEnrolmentEvent> Start(Guid id) => EnrolmentRules.Enrol(id, Guid.Parse("0b8f5d0e-8a59-4c52-9a52-4d4a3b1f9c01"), "u1", "a1", "c1", schedule, [], Now);
        await using (var session = store.LightweightSession(TenantId))
        {
            session.Events.StartStream<EnrolmentState>(bulk, Start(bulk).Cast<object>().ToArray());
            session.Events.StartStream<EnrolmentState>(appended, Start(appended).Cast<object>().ToArray());
            await session.SaveChangesAsync();
        }
        var tick = Now + Duration.FromHours(1);

        await using (var session = store.LightweightSession(TenantId))
        {
            EventActors.Stamp(session, Actor, TraceId, "cause-1");
            var loaded = (await ExistingStreams.Load(session, [bulk], CancellationToken.None))[bulk];
            var events = EnrolmentRules.Tick(loaded.State, tick).Events;
            Assert.NotEmpty(events);
            await ExistingStreams.Write(session, [new ExistingStreams.Append(bulk, loaded.Version, events, events.Aggregate(loaded.State, EnrolmentState.Fold))], tick, CancellationToken.None);
            session.Store(new Enrolment.Api.Features.Content.ContentItem { Id = "c1" });
            await session.SaveChangesAsync();
        }
        await using (var session = store.LightweightSession(TenantId))
        {
            EventActors.Stamp(session, Actor, TraceId, "cause-1");
            var stream = await session.Events.FetchForWriting<EnrolmentState>(appended);
            stream.AppendMany(EnrolmentRules.Tick(stream.Aggregate!, tick).Events.Cast<object>().ToArray());
            await session.SaveChangesAsync();
        }

        string[] eventSkip = ["seq_id", "id", "timestamp"];
        Assert.Contains(await Rows("mt_events", "stream_id", bulk), row => row.Contains("\"user_name\": \"operation:op-1\"") && row.Contains(TraceId));
        Assert.Equal(await Rows("mt_events", "stream_id", appended, eventSkip), await Rows("mt_events", "stream_id", bulk, eventSkip));
        string[] streamSkip = ["timestamp", "created"];
        Assert.Equal(await Rows("mt_streams", "id", appended, streamSkip), await Rows("mt_streams", "id", bulk, streamSkip));
        string[] documentSkip = ["mt_last_modified"];
        Assert.Equal(await Rows("mt_doc_enrolment", "id", appended, documentSkip), await Rows("mt_doc_enrolment", "id", bulk, documentSkip));
        Assert.Contains("\"overdue\"", (await Rows("mt_doc_enrolment", "id", bulk, documentSkip))[0], StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Member_rows_written_set_based_are_the_rows_marten_s_store_writes_and_leaves_delete_them()
    {
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        await using (var session = store.LightweightSession(TenantId))
        {
            await AudienceMemberRows.Write(session, "bulk", ["u1", "u2", "u3"], [], Now, CancellationToken.None);
            session.Store(new Enrolment.Api.Features.Content.ContentItem { Id = "c1" });
            await session.SaveChangesAsync();
        }
        await using (var session = store.LightweightSession(TenantId))
        {
            session.Store(new Enrolment.Api.Features.Audiences.AudienceMember { Id = "marten/u1", AudienceId = "marten", UserId = "u1", JoinedAt = Now });
            await session.SaveChangesAsync();
        }
        var dataSource = Host.Services.GetRequiredService<NpgsqlDataSource>();
        async Task<List<string>> Members(string audience)
        {
            await using var command = dataSource.CreateCommand(
                "select (to_jsonb(t) - array['mt_version', 'mt_last_modified'])::text from enrolment.mt_doc_audiencemember t where tenant_id = $1 and audience_id = $2 order by id");
            command.Parameters.AddWithValue(TenantId);
            command.Parameters.AddWithValue(audience);
            var rows = new List<string>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync()) rows.Add(reader.GetString(0).Replace(audience, "<audience>"));
            return rows;
        }
        Assert.Equal(await Members("marten"), (await Members("bulk")).Take(1));

        // Leaves delete, joins of existing members overwrite, in one change.
        await using (var session = store.LightweightSession(TenantId))
        {
            await AudienceMemberRows.Write(session, "bulk", ["u3", "u4"], ["u1", "u2"], Now + Duration.FromDays(1), CancellationToken.None);
            session.Store(new Enrolment.Api.Features.Content.ContentItem { Id = "c1" });
            await session.SaveChangesAsync();
        }
        await using (var query = store.QuerySession(TenantId))
        {
            var members = await query.Query<Enrolment.Api.Features.Audiences.AudienceMember>().Where(m => m.AudienceId == "bulk").OrderBy(m => m.UserId).ToListAsync();
            Assert.Equal(["u3", "u4"], members.Select(m => m.UserId));
            Assert.All(members, m => Assert.Equal(Now + Duration.FromDays(1), m.JoinedAt));
        }
    }

    [Fact]
    public async Task A_stream_started_by_copy_has_the_rows_of_a_stream_started_by_marten()
    {
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        Guid copied = Guid.NewGuid(), appended = Guid.NewGuid();

        // Both with the same actor metadata (Features/Compliance/EventActors), which the copy must write as Marten does.
        await using (var session = store.LightweightSession(TenantId))
        {
            EventActors.Stamp(session, Actor, TraceId, "cause-1");
            await NewStreams.Copy(session, [Stream(copied)], [EnrolmentState.Replay(Stream(copied))!], Now, CancellationToken.None);
            // As in a fan-out batch, the session also has work of its own (its batch marker), so saving it commits.
            session.Store(new Enrolment.Api.Features.Content.ContentItem { Id = "c1" });
            await session.SaveChangesAsync();
        }
        await using (var session = store.LightweightSession(TenantId))
        {
            EventActors.Stamp(session, Actor, TraceId, "cause-1");
            session.Events.StartStream<EnrolmentState>(appended, Stream(appended).Cast<object>().ToArray());
            await session.SaveChangesAsync();
        }

        string[] eventSkip = ["seq_id", "id", "timestamp"];
        Assert.All(await Rows("mt_events", "stream_id", copied), row => Assert.Contains("\"user_name\": \"operation:op-1\"", row));
        Assert.Equal(await Rows("mt_events", "stream_id", appended, eventSkip), await Rows("mt_events", "stream_id", copied, eventSkip));
        string[] streamSkip = ["timestamp", "created"];
        Assert.Equal(await Rows("mt_streams", "id", appended, streamSkip), await Rows("mt_streams", "id", copied, streamSkip));
        string[] documentSkip = ["mt_last_modified"];
        Assert.Equal(await Rows("mt_doc_enrolment", "id", appended, documentSkip), await Rows("mt_doc_enrolment", "id", copied, documentSkip));

        // The document's public JSON lacks exactly the internal properties.
        var table = Host.Services.GetRequiredService<EnrolmentTable>();
        var json = System.Text.Json.Nodes.JsonNode.Parse((await table.PublicJson(TenantId, copied, CancellationToken.None))!.Value.Json)!.AsObject();
        Assert.DoesNotContain(json, p => EnrolmentTable.InternalProperties.Contains(p.Key));
        Assert.Contains("schedule", EnrolmentTable.InternalProperties);
        Assert.Contains("completionIds", EnrolmentTable.InternalProperties);
        Assert.Equal("complete", json["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_migrated_database_has_nothing_left_to_migrate_so_no_start_drops_and_recreates_the_triggers_on_mt_events()
    {
        // The schema objects of our own (audit chain, change feed triggers) must compare equal to what they created,
        // or every node's start re-creates them, taking a lock on mt_events while requests write to it.
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        await store.Storage.ApplyAllConfiguredChangesToDatabaseAsync();
        foreach (var shard in await store.Shards()) await shard.AssertDatabaseMatchesConfigurationAsync();
    }
}

