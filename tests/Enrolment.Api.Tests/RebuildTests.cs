using Enrolment.Api.Infrastructure.Sql;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Enrolment.Api.Tests;

/// <summary>
/// `enrolments rebuild` refolds the documents in place: readers never meet a missing enrolment, an interrupted rebuild
/// resumes, a write that commits during a batch is never undone, and the result equals the documents the events give.
/// </summary>
public sealed class RebuildTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private EnrolmentRebuild Rebuild() => new(Host.Services.GetRequiredService<IDocumentStore>(), Host.Services.GetRequiredService<NpgsqlDataSource>());

    private async Task Sql(string sql)
    {
        await using var command = Host.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand(sql);
        await command.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task A_rebuild_restores_damaged_documents_without_a_reader_ever_missing_one_and_resumes_after_an_interruption()
    {
        var users = Enumerable.Range(0, 60).Select(i => $"r{i:D2}").ToArray();
        var assignmentId = await OpenAssignmentFor(users);
        (await Complete("x1", "r03", "c1")).AssertStatus(200);
        var ids = (await ListAll($"/assignments/{assignmentId}/enrolments")).Select(e => e.Str("id")).ToArray();
        var expected = new Dictionary<string, string>();
        foreach (var id in ids) expected[id] = (await Get($"/assignments/{assignmentId}/enrolments/{id}")).Body;

        // Damage the documents (as a buggy version would have written them) and lose five; the rebuild must put each right.
        // r59's stays intact: it is written to while the rebuild runs.
        await Sql("update enrolment.mt_doc_enrolment set data = jsonb_set(data, '{status}', '\"archived\"') where user_id <> 'r59'");
        await Sql("delete from enrolment.mt_doc_enrolment where user_id in ('r50', 'r51', 'r52', 'r53', 'r54')");
        var lost = ids.Where(id => new[] { "r50", "r51", "r52", "r53", "r54" }.Any(u => expected[id].Contains($"\"{u}\""))).ToHashSet();
        Assert.Equal(5, lost.Count);

        // Readers poll every enrolment while the rebuild runs: none may ever be missing.
        using var stop = new CancellationTokenSource();
        var missing = 0;
        var reader = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
                foreach (var id in ids.Where(id => !lost.Contains(id)))
                    if ((await Get($"/assignments/{assignmentId}/enrolments/{id}")).Status != 200) Interlocked.Increment(ref missing);
        });

        // Two batches, then "killed": a new rebuild object resumes from the recorded position.
        var first = Rebuild();
        Assert.Null(await first.Resume(restart: false, CancellationToken.None));
        var position = new EnrolmentRebuild.Position("", Guid.Empty, 0, 0, DateTimeOffset.UtcNow);
        position = (await first.NextBatch(position, 10, CancellationToken.None))!;
        position = (await first.NextBatch(position, 10, CancellationToken.None))!;
        Assert.Equal(20, position.Streams);

        // A write commits between batches, on a stream the rebuild has not reached or has passed: it stays.
        (await Complete("x2", "r59", "c1")).AssertStatus(200);
        var r59 = ids.Single(id => expected.ContainsKey(id) && (expected[id].Contains("\"r59\"")));
        expected[r59] = (await Get($"/assignments/{assignmentId}/enrolments/{r59}")).Body;

        var resumed = Rebuild();
        var at = await resumed.Resume(restart: false, CancellationToken.None);
        Assert.NotNull(at);
        Assert.Equal(20, at!.Streams);
        while (await resumed.NextBatch(at, 10, CancellationToken.None) is { } next) at = next;
        await resumed.Finish(CancellationToken.None);
        Assert.Null(await Rebuild().Resume(restart: false, CancellationToken.None));

        await stop.CancelAsync();
        await reader;
        Assert.Equal(0, missing);
        Assert.Equal(ids.Length, at.Streams);
        foreach (var id in ids)
            Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(System.Text.Json.Nodes.JsonNode.Parse(expected[id]),
                System.Text.Json.Nodes.JsonNode.Parse((await Get($"/assignments/{assignmentId}/enrolments/{id}")).Body)), $"enrolment {id} after the rebuild");
        Assert.Equal("complete", (await FindEnrolment(assignmentId, "r59")).Str("status"));
    }

    [Fact]
    public async Task A_rebuild_never_replaces_a_document_by_one_folded_from_fewer_events()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var id = await EnrolmentIdFor(assignmentId, "u1");
        // As if a write committed after the batch read the stream: the stored document is newer than the events it read.
        await Sql("update enrolment.mt_doc_enrolment set mt_version = mt_version + 1, data = jsonb_set(data, '{status}', '\"complete\"')");

        var rebuild = Rebuild();
        await rebuild.Resume(restart: true, CancellationToken.None);
        var position = new EnrolmentRebuild.Position("", Guid.Empty, 0, 0, DateTimeOffset.UtcNow);
        while (await rebuild.NextBatch(position, 100, CancellationToken.None) is { } next) position = next;
        await rebuild.Finish(CancellationToken.None);
        Assert.Equal("complete", (await GetEnrolment(assignmentId, id)).Str("status"));
    }

    [Fact]
    public async Task A_rebuild_leaves_documents_equal_to_their_refold_untouched_and_rewrites_the_others()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2", "u3");
        var damaged = Guid.Parse(await EnrolmentIdFor(assignmentId, "u2"));
        await Sql($"update enrolment.mt_doc_enrolment set data = jsonb_set(data, '{{status}}', '\"archived\"') where id = '{damaged}'");
        var before = await RowVersions();

        var rebuild = Rebuild();
        await rebuild.Resume(restart: true, CancellationToken.None);
        var position = new EnrolmentRebuild.Position("", Guid.Empty, 0, 0, DateTimeOffset.UtcNow);
        long written = 0;
        while (await rebuild.Read(position, 2, CancellationToken.None) is { } batch)
        {
            written += await rebuild.Write(batch, CancellationToken.None);
            position = batch.Next;
        }
        await rebuild.Finish(CancellationToken.None);

        var after = await RowVersions();
        Assert.Equal(1, written);
        Assert.All(before.Where(b => b.Key != damaged), b => Assert.Equal(b.Value, after[b.Key])); // same row version: not written
        Assert.NotEqual(before[damaged], after[damaged]);
        Assert.Equal("open", (await GetEnrolment(assignmentId, damaged.ToString())).Str("status"));
    }

    /// <summary>Each enrolment document's physical row version (xmin): it changes only when the row is written.</summary>
    private async Task<Dictionary<Guid, string>> RowVersions()
    {
        await using var command = Host.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand("select id, xmin::text from enrolment.mt_doc_enrolment");
        await using var reader = await command.ExecuteReaderAsync();
        var versions = new Dictionary<Guid, string>();
        while (await reader.ReadAsync()) versions[reader.GetGuid(0)] = reader.GetString(1);
        return versions;
    }

    [Fact]
    public async Task A_rebuilt_document_is_what_Martens_own_projection_folds_from_the_same_events()
    {
        // Streams written by every path: the set-based start (fan-out), Marten's append (one completion, a waiver, a
        // reminder), the set-based append (an archive by a leave).
        var users = Enumerable.Range(0, 12).Select(i => $"p{i:D2}").ToArray();
        var assignmentId = await OpenAssignmentFor(users);
        (await Complete("p1-done", "p01", "c1")).AssertStatus(200);
        (await Post($"/assignments/{assignmentId}/enrolments/{await EnrolmentIdFor(assignmentId, "p02")}/waive", new { reason = "certified" })).AssertStatus(200);
        (await Post($"/assignments/{assignmentId}/enrolments/{await EnrolmentIdFor(assignmentId, "p03")}/reminders")).AssertStatus(200);
        await RemoveMember("a1", "p04");
        var ids = (await ListAll($"/assignments/{assignmentId}/enrolments")).Select(e => Guid.Parse(e.Str("id"))).ToArray();

        // Every document wrong, then the hand-written rebuild to the end.
        await Sql("update enrolment.mt_doc_enrolment set data = jsonb_set(data, '{status}', '\"archived\"')");
        var rebuild = Rebuild();
        await rebuild.Resume(restart: true, CancellationToken.None);
        var position = new EnrolmentRebuild.Position("", Guid.Empty, 0, 0, DateTimeOffset.UtcNow);
        while (await rebuild.NextBatch(position, 5, CancellationToken.None) is { } next) position = next;
        await rebuild.Finish(CancellationToken.None);

        var store = Host.Services.GetRequiredService<IDocumentStore>();
        var serializer = store.Options.Serializer();
        await using var session = store.QuerySession(TenantId);
        foreach (var id in ids)
        {
            var rebuilt = await session.LoadAsync<Domain.EnrolmentState>(id);
            var marten = await session.Events.AggregateStreamAsync<Domain.EnrolmentState>(id);
            Assert.Equal(serializer.ToJson(marten), serializer.ToJson(rebuilt));
        }
    }
}
