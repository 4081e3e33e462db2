using Enrolment.Api.Features.Audit;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Enrolment.Api.Tests;

/// <summary>
/// The tamper-evident history (docs/audit.md): every write path chains its events in its own transaction, `audit verify`
/// names the first broken link of each kind of tampering done with SQL behind the service's back, and the export
/// passes the shipped verifier (docs/verify_export.py, written without the service's code) until it is tampered with.
/// </summary>
public sealed class AuditTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private NpgsqlDataSource Db => Host.Services.GetRequiredService<NpgsqlDataSource>();

    /// <summary>Two enrolments started by the fan-out's COPY, one completed over HTTP; returns the assignment and u1's enrolment.</summary>
    private async Task<(Guid Assignment, Guid Enrolment)> History()
    {
        await PutContent("c1");
        await SetMembers("a1", ["u1", "u2"]);
        var assignment = Guid.Parse(await CreateAssignment("a1", "c1"));
        (await Post("/completions", new { completionId = "x1", userId = "u1", contentId = "c1", completedAt = Now() })).AssertStatus(200);
        return (assignment, Ids.EnrolmentId(TenantId, assignment, "u1"));
    }

    private Task Checkpoint() => Host.Services.GetRequiredService<AuditCheckpoints>().Take(wait: true, CancellationToken.None);

    private Task<AuditVerifier.Result> Verify() => AuditVerifier.Tenant(Host.Services.GetRequiredService<AuditTables>(),
        Host.Services.GetRequiredService<AuditCheckpoints>(), TenantId, 3, CancellationToken.None); // small pages: paging is exercised

    private async Task Sql(string sql, Guid stream)
    {
        foreach (var statement in sql.Split("; "))
        {
            await using var command = Db.CreateCommand(statement);
            if (statement.Contains("$1")) command.Parameters.AddWithValue(TenantId);
            if (statement.Contains("$2")) command.Parameters.AddWithValue(stream);
            await command.ExecuteNonQueryAsync();
        }
    }

    private async Task<(int Exit, string Output)> VerifyExport(string url)
    {
        var response = (await Get(url)).AssertStatus(200);
        Assert.Equal("application/x-ndjson", response.ContentType);
        return await AuditChecks.RunShippedVerifier(response.Body);
    }

    [Fact]
    public async Task Copy_and_http_writes_are_chained_and_an_intact_history_verifies_in_the_service_and_in_the_shipped_script()
    {
        var (assignment, enrolment) = await History();
        await Checkpoint();

        var result = await Verify();
        Assert.True(result.Broken is null, result.Broken);
        Assert.True(result.Events >= 4, $"two enrolments started by COPY (two events each with the completion): {result.Events} events");
        Assert.NotNull(result.Anchor);

        var events = (await Get($"/assignments/{assignment}/enrolments/{enrolment}/events")).AssertStatus(200).Json.AsArray();
        Assert.True(events.Count >= 2);
        Assert.Equal(new string('0', 64), events[0].Str("previousHash"));
        for (var i = 1; i < events.Count; i++) Assert.Equal(events[i - 1].Str("hash"), events[i].Str("previousHash"));
        Assert.All(events, e => Assert.Matches("^[0-9a-f]{64}$", e.Str("hash")));

        foreach (var url in new[] { "/audit/export", $"/audit/export?assignmentId={assignment}", "/audit/export?userId=u1", $"/audit/export?assignmentId={assignment}&userId=u1" })
        {
            var (exit, output) = await VerifyExport(url);
            Assert.True(exit == 0, $"{url}: {output}");
        }
        var one = (await Get($"/audit/export?assignmentId={assignment}&userId=u1")).Body.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(events.Count, one.Count(l => l.Contains("\"kind\":\"event\"")));
        Assert.Contains("\"kind\":\"checkpoint\"", one[^2]); // then the tenant's checkpoints, then the anchor
        Assert.Contains("\"kind\":\"anchor\"", one[^1]);
    }

    [Fact]
    public async Task Events_stored_before_the_chain_existed_are_chained_when_their_stream_is_next_written()
    {
        // An upgrade from a version without the chain: u2's events exist, its chain rows do not.
        var (assignment, _) = await History();
        var enrolment = Ids.EnrolmentId(TenantId, assignment, "u2");
        await Sql("delete from enrolment.audit_chain where tenant_id = $1 and stream_id = $2", enrolment);

        // Its next append backfills the stream's earlier events in order, then chains the new one to them.
        (await Post("/completions", new { completionId = "x2", userId = "u2", contentId = "c1", completedAt = Now() })).AssertStatus(200);
        await using (var count = Db.CreateCommand("select count(*), max(version) from enrolment.audit_chain where tenant_id = $1 and stream_id = $2"))
        {
            count.Parameters.AddWithValue(TenantId);
            count.Parameters.AddWithValue(enrolment);
            await using var reader = await count.ExecuteReaderAsync();
            await reader.ReadAsync();
            Assert.True(reader.GetInt64(1) >= 2 && reader.GetInt64(0) == reader.GetInt64(1), $"{reader.GetInt64(0)} chain rows up to version {reader.GetInt64(1)}");
        }
        await Checkpoint();
        var result = await Verify();
        Assert.True(result.Broken is null, result.Broken);
    }

    [Fact]
    public async Task A_failed_append_leaves_Marten_gap_fillers_that_are_written_and_kept_out_of_the_chain()
    {
        var (_, enrolment) = await History();
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        // A unit of work that fails after its events drew sequence numbers: the append succeeds, then the insert of a
        // completion record whose id exists fails (as a concurrent repeat of a completionId does). Marten then writes
        // a "tombstone" for each number it drew (its gap fillers), off the caller's path.
        await using (var session = store.LightweightSession(TenantId))
        {
            session.Events.Append(enrolment, new EnrolmentArchived(enrolment, ArchiveReason.AssignmentRemoved, SystemClockNow()));
            session.Insert(new Enrolment.Api.Features.Completions.CompletionRecord { Id = "x1" });
            await Assert.ThrowsAnyAsync<Exception>(() => session.SaveChangesAsync());
        }

        // Written in the background: wait for it (Marten retries a refused write, and logs each refusal as an error).
        await using var tombstones = Db.CreateCommand("select count(*) from enrolment.mt_events where tenant_id = $1 and type = $2");
        tombstones.Parameters.AddWithValue(TenantId);
        tombstones.Parameters.AddWithValue(AuditChainSql.GapFillerType);
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while ((long)(await tombstones.ExecuteScalarAsync())! == 0 && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.True((long)(await tombstones.ExecuteScalarAsync())! >= 1, "Marten wrote no gap filler within 15 s: the audit trigger refused it");
        await Checkpoint();
        var result = await Verify();
        Assert.True(result.Broken is null, result.Broken);
        var (exit, output) = await VerifyExport("/audit/export");
        Assert.True(exit == 0, output);
    }

    private static NodaTime.Instant SystemClockNow() => NodaTime.SystemClock.Instance.GetCurrentInstant();

    /// <summary>
    /// After `tenants move`, a write that failed in the old shard (fenced) can have its gap fillers written by Marten in
    /// the new one, with a number the old shard drew: the scale-out scenario found one far above the new shard's own
    /// sequence. The checkpoint taken next used it as its high-water mark, the tenant's next appends got lower numbers
    /// inside that checkpoint's range, and the move's own verification failed ("3186 events then, 3189 now").
    /// </summary>
    [Fact]
    public async Task A_gap_filler_for_a_number_this_shard_never_drew_is_dropped_and_later_appends_stay_outside_earlier_checkpoints()
    {
        var (assignment, enrolment) = await History();
        await Checkpoint();
        // Marten's gap fillers as it writes them: type tombstone, version = the number, in a bookkeeping stream.
        var fillers = Guid.NewGuid();
        await Sql("insert into enrolment.mt_streams (tenant_id, id, version) values ($1, $2, 0)", fillers);
        long drawn;
        await using (var command = Db.CreateCommand("select last_value from enrolment.mt_events_sequence"))
            drawn = (long)(await command.ExecuteScalarAsync())!;
        async Task Filler(string seq)
        {
            await using var insert = Db.CreateCommand($"insert into enrolment.mt_events (seq_id, id, stream_id, version, data, type, timestamp, tenant_id) " +
                                                     $"select s, gen_random_uuid(), $2, s, '{{}}', '{AuditChainSql.GapFillerType}', '-infinity', $1 from (select {seq} as s) x");
            insert.Parameters.AddWithValue(TenantId);
            insert.Parameters.AddWithValue(fillers);
            await insert.ExecuteNonQueryAsync();
        }
        await Filler((drawn + 1000).ToString());                 // another shard's number, above this one's sequence
        await Filler("nextval('enrolment.mt_events_sequence')"); // one this shard drew: a real gap filler here
        await using (var command = Db.CreateCommand("select array_agg(seq_id order by seq_id) from enrolment.mt_events where stream_id = $1"))
        {
            command.Parameters.AddWithValue(fillers);
            var kept = (long[])(await command.ExecuteScalarAsync())!;
            Assert.Equal([drawn + 1], kept);
        }

        await Checkpoint();
        await Post($"/assignments/{assignment}/enrolments/{enrolment}/reminders");
        (await Post("/completions", new { completionId = "x2", userId = "u2", contentId = "c1", completedAt = Now() })).AssertStatus(200);
        await Checkpoint();
        var result = await Verify();
        Assert.True(result.Broken is null, result.Broken);
        var (exit, output) = await VerifyExport("/audit/export");
        Assert.True(exit == 0, output);
    }

    [Fact]
    public async Task One_statement_that_inserts_several_events_of_one_stream_chains_each_to_the_one_before_it()
    {
        var (_, enrolment) = await History();
        // Two more events of u1's stream in one INSERT, the later version first: the chain follows versions, not row order.
        await Sql("insert into enrolment.mt_events (seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, is_archived) " +
                  "select nextval('enrolment.mt_events_sequence'), gen_random_uuid(), stream_id, m.next, data, type, timestamp, tenant_id, mt_dotnet_type, false " +
                  "from enrolment.mt_events, (values (2), (1)) as v(step), lateral (select max(version) + v.step as next from enrolment.mt_events where tenant_id = $1 and stream_id = $2) m " +
                  "where tenant_id = $1 and stream_id = $2 and version = 1; " +
                  "update enrolment.mt_streams set version = version + 2 where tenant_id = $1 and id = $2", enrolment);
        await using var links = Db.CreateCommand(
            "select count(*) from enrolment.audit_chain c join enrolment.audit_chain p on p.tenant_id = c.tenant_id and p.stream_id = c.stream_id and p.version = c.version - 1 " +
            "where c.tenant_id = $1 and c.stream_id = $2 and c.previous_hash = p.hash");
        links.Parameters.AddWithValue(TenantId);
        links.Parameters.AddWithValue(enrolment);
        var linked = (long)(await links.ExecuteScalarAsync())!;
        await using var versions = Db.CreateCommand("select max(version) from enrolment.mt_events where tenant_id = $1 and stream_id = $2");
        versions.Parameters.AddWithValue(TenantId);
        versions.Parameters.AddWithValue(enrolment);
        var last = (long)(await versions.ExecuteScalarAsync())!;
        Assert.Equal(last - 1, linked); // every version after the first links to its predecessor's stored hash
        await Checkpoint();
        var result = await Verify();
        Assert.True(result.Broken is null, result.Broken);
    }

    [Theory]
    [InlineData("edit-data", "update enrolment.mt_events set data = data || '{\"answer\": 1}' where tenant_id = $1 and stream_id = $2 and version = 2", "data differs")]
    [InlineData("edit-timestamp", "update enrolment.mt_events set timestamp = timestamp - interval '1 day' where tenant_id = $1 and stream_id = $2 and version = 2", "timestamp is")]
    [InlineData("edit-actor", "update enrolment.mt_events set user_name = 'secret:someone-else' where tenant_id = $1 and stream_id = $2 and version = 2", "actor metadata")]
    [InlineData("delete-event", "delete from enrolment.mt_events where tenant_id = $1 and stream_id = $2 and version = 2", "was removed")]
    [InlineData("insert-event", "alter table enrolment.mt_events disable trigger " + AuditChainSql.TriggerName + "; insert into enrolment.mt_events (seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, is_archived) select nextval('enrolment.mt_events_sequence'), gen_random_uuid(), stream_id, 99, data, type, timestamp, tenant_id, mt_dotnet_type, false from enrolment.mt_events where tenant_id = $1 and stream_id = $2 and version = 1; alter table enrolment.mt_events enable trigger " + AuditChainSql.TriggerName, "version")]
    [InlineData("delete-stream", "delete from enrolment.audit_chain where tenant_id = $1 and stream_id = $2; delete from enrolment.mt_events where tenant_id = $1 and stream_id = $2; delete from enrolment.mt_streams where tenant_id = $1 and id = $2", "no longer match")]
    [InlineData("delete-tail", "delete from enrolment.audit_chain where tenant_id = $1 and stream_id = $2 and version = (select max(version) from enrolment.audit_chain where tenant_id = $1 and stream_id = $2); delete from enrolment.mt_events where tenant_id = $1 and stream_id = $2 and version = (select max(version) from enrolment.mt_events where tenant_id = $1 and stream_id = $2); update enrolment.mt_streams set version = version - 1 where tenant_id = $1 and id = $2", "no longer match")]
    public async Task Audit_verify_names_the_enrolment_when_sql_tampers_behind_the_service(string kind, string sql, string what)
    {
        var (_, enrolment) = await History();
        await Checkpoint();
        Assert.True((await Verify()).Broken is not { } b0 || false, (await Verify()).Broken);

        await Sql(sql, enrolment);

        var result = await Verify();
        Assert.True(result.Broken is not null, $"{kind} must be detected");
        Assert.Contains(what, result.Broken);
        if (kind is not ("delete-stream" or "delete-tail")) Assert.Contains($"enrolment {enrolment}", result.Broken);
        // A later checkpoint must not anchor over the evidence.
        await Checkpoint();
        Assert.NotNull((await Verify()).Broken);
        if (kind is "edit-data" or "edit-timestamp" or "delete-stream" or "delete-tail")
        {
            var (exit, output) = await VerifyExport("/audit/export");
            Assert.True(exit == 1, $"the shipped verifier must fail on a {kind} export: {output}");
        }
    }

    /// <summary>
    /// A checkpoint digests only the chain rows added since the previous one (form 2), and a history anchored first by a
    /// form-1 checkpoint (before #32) goes on verifying, in the service and in the shipped script, with form-2 ones after it.
    /// </summary>
    [Fact]
    public async Task A_checkpoint_covers_what_was_written_since_the_last_and_form_1_checkpoints_still_verify()
    {
        var (assignment, enrolment) = await History();
        // A form-1 checkpoint, as the service wrote them before form 2: every stream's head at the high-water mark.
        long highWater;
        await using (var command = Db.CreateCommand("select max(seq_id) from enrolment.mt_events where tenant_id = $1"))
        {
            command.Parameters.AddWithValue(TenantId);
            highWater = (long)(await command.ExecuteScalarAsync())!;
        }
        var heads = Heads.Start(highWater);
        await using (var connection = await Db.OpenConnectionAsync())
            await foreach (var e in Host.Services.GetRequiredService<AuditTables>().ChainEntries(connection, TenantId, CancellationToken.None))
                heads.Add(e.Stream, e.Version, e.Sequence, e.Hash);
        var (digest, count) = heads.Finish();
        var v1 = new AuditCheckpoint { Id = 1, Form = 1, HighWaterSequence = highWater, TakenAt = AuditHash.Timestamp(DateTimeOffset.UtcNow), StreamCount = count, HeadsDigest = digest, PreviousHash = AuditHash.Zeros };
        v1.Hash = AuditHash.Checkpoint(TenantId, v1);
        await using (var session = Host.Services.GetRequiredService<IDocumentStore>().LightweightSession(TenantId))
        {
            session.Insert(v1);
            await session.SaveChangesAsync();
        }

        // Two more events, then a form-2 checkpoint: it covers those two, not the history before them.
        (await Post("/completions", new { completionId = "x2", userId = "u2", contentId = "c1", completedAt = Now() })).AssertStatus(200);
        await Post($"/assignments/{assignment}/enrolments/{enrolment}/reminders");
        await Checkpoint();
        var chain = await Host.Services.GetRequiredService<AuditCheckpoints>().ForTenant(TenantId, CancellationToken.None);
        Assert.Equal([1, 2], chain.Select(c => c.Form));
        Assert.Equal((highWater, 2L), (chain[1].FromSequence, chain[1].EventCount));
        // Nothing written since: no new checkpoint.
        await Checkpoint();
        Assert.Equal(2, (await Host.Services.GetRequiredService<AuditCheckpoints>().ForTenant(TenantId, CancellationToken.None)).Count);

        var result = await Verify();
        Assert.True(result.Broken is null, result.Broken);
        var (exit, output) = await VerifyExport("/audit/export");
        Assert.True(exit == 0, output);

        // Deleting the assignment's stream (its one event is covered by the form-1 checkpoint only) is still caught, by the heads.
        await Sql("delete from enrolment.audit_chain where tenant_id = $1 and stream_id = $2; delete from enrolment.mt_events where tenant_id = $1 and stream_id = $2; delete from enrolment.mt_streams where tenant_id = $1 and id = $2", assignment);
        Assert.Contains("stream heads", (await Verify()).Broken);
    }

    /// <summary>
    /// Every form-2 checkpoint of a tenant is checked against its own range: a second one counts its own rows, not the
    /// first one's too (which made `audit verify` report a history with two checkpoints as tampered with).
    /// </summary>
    [Fact]
    public async Task A_history_with_several_form_2_checkpoints_verifies()
    {
        var (assignment, enrolment) = await History();
        await Checkpoint();
        (await Post("/completions", new { completionId = "x2", userId = "u2", contentId = "c1", completedAt = Now() })).AssertStatus(200);
        await Checkpoint();
        await Post($"/assignments/{assignment}/enrolments/{enrolment}/reminders");
        await Checkpoint();
        var chain = await Host.Services.GetRequiredService<AuditCheckpoints>().ForTenant(TenantId, CancellationToken.None);
        Assert.Equal([2, 2, 2], chain.Select(c => c.Form));

        var result = await Verify();
        Assert.True(result.Broken is null, result.Broken);
        var (exit, output) = await VerifyExport("/audit/export");
        Assert.True(exit == 0, output);
    }

    /// <summary>An export written before form 2 (checked in as a fixture: no checkpoint lines, a form-1 anchor) still verifies, and its tampering is still caught.</summary>
    [Fact]
    public async Task An_export_written_before_form_2_still_verifies_with_the_shipped_script()
    {
        var original = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "Fixtures", "audit-export-v1.ndjson"));
        var (exit, output) = await AuditChecks.RunShippedVerifier(original);
        Assert.True(exit == 0, output);

        // The last event of a stream dropped, and the event count mended to match: only the heads digest can tell.
        var lines = original.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
        var events = lines.Where(l => l.Contains("\"kind\":\"event\"")).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!).ToList();
        var last = events.Where(e => e["version"]!.GetValue<long>() > 1)
            .First(e => !events.Any(o => o.Str("streamId") == e.Str("streamId") && o["version"]!.GetValue<long>() > e["version"]!.GetValue<long>()));
        lines.RemoveAll(l => l.Contains(last.Str("hash")) && l.Contains("\"kind\":\"event\""));
        lines[^1] = lines[^1].Replace($"\"events\":{events.Count},", $"\"events\":{events.Count - 1},");
        (exit, output) = await AuditChecks.RunShippedVerifier(string.Join('\n', lines) + "\n");
        Assert.True(exit == 1 && output.Contains("stream heads"), output);
    }

    [Fact]
    public async Task The_export_is_streamed_not_buffered()
    {
        await PutContent("c1");
        await SetMembers("a1", Enumerable.Range(0, 1_500).Select(i => $"user-{i:D4}"));
        await CreateAssignment("a1", "c1");
        var client = Host.Server.CreateClient();
        client.DefaultRequestHeaders.Authorization = System.Net.Http.Headers.AuthenticationHeaderValue.Parse(Auth);
        using var response = await client.GetAsync("/audit/export", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        // Written as read: no Content-Length (a buffered body would have one), and lines arrive before the end.
        Assert.Null(response.Content.Headers.ContentLength);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var (events, anchors) = (0, 0);
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.Contains("\"kind\":\"event\"")) events++;
            if (line.Contains("\"kind\":\"anchor\"")) anchors++;
        }
        Assert.Equal((1_500 + 1, 1), (events, anchors)); // enrolments and the assignment's event, then the anchor
    }
}
