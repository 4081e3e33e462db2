using Enrolment.Api.Infrastructure;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Enrolment.Api.Tests;

/// <summary>
/// A second shard as an operator adds one (PRODUCT.md, "Scale-out"): a database of its own on the same server,
/// `shards add`, `tenants add --shard`, then a tenant's enrolment flow through the running service. Every row of that
/// tenant must be in the second database and none in the first.
/// </summary>
public sealed class ShardTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private const string Shard = "second";

    /// <summary>The second database: the test database's name with a suffix, kept between runs like the test database.</summary>
    private static string SecondConnectionString =>
        new NpgsqlConnectionStringBuilder(AppFixture.ConnectionString) { Database = new NpgsqlConnectionStringBuilder(AppFixture.ConnectionString).Database + "_second" }.ConnectionString;

    [Fact]
    public async Task A_tenant_placed_in_a_second_shard_writes_every_row_there_and_none_in_the_first()
    {
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        await EnsureDatabase(SecondConnectionString);

        // Registered once per test database: a later run meets it and gets the refusal instead.
        var add = await CliTests.Cli("shards", "add", Shard, SecondConnectionString);
        if ((await store.ListShards()).Count(s => s.DatabaseId == Shard) != 1 || add.ExitCode != 0)
            Assert.True(add.ExitCode != 0 && add.StdErr.Contains("already in the pool", StringComparison.Ordinal), $"shards add: {add}");
        // The rule for new tenants leaves it alone (so the other tests' tenants stay in the first shard); --shard does not.
        await store.Advanced.MarkDatabaseFullAsync(Shard, CancellationToken.None);

        var list = await CliTests.Cli("shards", "list");
        Assert.True(list.ExitCode == 0, $"shards list: {list}");
        var second = new NpgsqlConnectionStringBuilder(SecondConnectionString);
        Assert.Contains(list.Lines, l => l.StartsWith($"{Shard}\t{second.Host}:{second.Port}/{second.Database}\t", StringComparison.Ordinal));
        Assert.Contains(list.Lines, l => l.StartsWith($"{TenantPool.HomeShard}\t", StringComparison.Ordinal));

        var tenant = "eu-west-2_Shard" + Scenarios.RandomLetters(8);
        var added = await CliTests.Cli("tenants", "add", tenant, "--shard", Shard);
        Assert.True(added.ExitCode == 0, $"tenants add --shard: {added}");
        var auth = Basic(tenant, added.LastLine);
        var tenants = await CliTests.Cli("tenants", "list");
        Assert.Contains(tenants.Lines, l => l.StartsWith($"{tenant}\tshard {Shard}\t", StringComparison.Ordinal));
        var unknown = await CliTests.Cli("tenants", "add", "eu-west-2_Shard" + Scenarios.RandomLetters(8), "--shard", "no-such-shard");
        Assert.True(unknown.ExitCode != 0 && unknown.StdErr.Contains("There is no shard 'no-such-shard'", StringComparison.Ordinal), $"an unknown shard is refused: {unknown}");

        try
        {
            // The running service learns of the new shard by itself (ShardPoolRefresh): the first request may come early.
            await Identity.Eventually(async () =>
            {
                var r = await Host.Send(HttpMethod.Put, "/content/c1", auth, Scenarios.ToJson(new { title = "Phishing basics" }));
                return (r.Status is 200 or 201, $"PUT /content/c1 answered {r.Status}: {r.Body}");
            }, "the service accepts the tenant of the new shard", TimeSpan.FromSeconds(30));

            await SetMembers("a1", ["u1", "u2"], auth);
            var assignment = await CreateAssignment("a1", "c1", auth: auth);
            (await Complete("done-1", "u1", "c1", auth: auth)).AssertStatus(200);
            Assert.Equal("complete", (await FindEnrolment(assignment, "u1", auth)).Str("status"));
            Assert.Equal(2, (await ListAll($"/assignments/{assignment}/enrolments", auth: auth)).Count);
            // The feed shows a change once no older transaction is open in the cluster: polled, not read once.
            await Identity.Eventually(async () =>
            {
                var changes = (await Get("/changes", auth)).AssertStatus(200).Json["items"]!.AsArray();
                return (changes.Count >= 3, $"GET /changes of the tenant in shard {Shard}: {changes.ToJsonString()}");
            }, "the change feed reads the new shard (two enrolments opened, one completed)", TimeSpan.FromSeconds(30));

            // Where the rows are: all in the second database, none in the first.
            var first = AppFixture.ConnectionString;
            foreach (var table in new[] { "mt_events", "mt_streams", "mt_doc_enrolment", "mt_doc_assignment", "mt_doc_audiencemember", "enrolment_locks", "audit_chain" })
            {
                Assert.True(await Count(SecondConnectionString, table, tenant) > 0, $"{table} of tenant {tenant} has rows in shard {Shard}");
                Assert.True(await Count(first, table, tenant) == 0, $"{table} of tenant {tenant} has rows in the first database, which is not its shard");
            }
        }
        finally
        {
            // Its rows, partitions and registry row go; the database and its registration stay for the next run. The
            // events first: mt_events is not partitioned, so removing the tenant alone would leave events whose
            // documents have no partition to go to, and the shard's summary daemon would stop at them.
            await store.Advanced.DeleteAllTenantDataAsync(tenant, CancellationToken.None);
            await store.Advanced.RemoveTenantFromShardAsync(tenant, CancellationToken.None);
        }
    }

    /// <summary>
    /// The write gate on its own, deterministically: while a move holds the tenant's lock, and once its fence row is
    /// written, a write answers 503 tenant-moving with Retry-After and stores nothing; reads go on; released, it succeeds.
    /// </summary>
    [Fact]
    public async Task A_write_of_a_tenant_being_moved_answers_503_with_Retry_After_and_stores_nothing_while_reads_go_on()
    {
        await PutContent("c1", "Phishing basics");
        await SetMembers("a1", ["u1"]);
        var assignment = await CreateAssignment("a1", "c1");
        await using var connection = await Host.Services.GetRequiredService<NpgsqlDataSource>().OpenConnectionAsync();
        async Task Sql(string sql)
        {
            await using var command = new NpgsqlCommand(sql, connection);
            command.Parameters.AddWithValue(TenantId);
            await command.ExecuteNonQueryAsync();
        }

        foreach (var (fence, lift) in new[]
        {
            ($"select pg_advisory_lock({Enrolment.Api.Infrastructure.Sql.TenantFence.LockClass}, hashtext($1))", $"select pg_advisory_unlock({Enrolment.Api.Infrastructure.Sql.TenantFence.LockClass}, hashtext($1))"),
            ("insert into enrolment.tenant_fences (tenant_id, moved_to, fenced_at) values ($1, 'elsewhere', now())", "delete from enrolment.tenant_fences where tenant_id = $1"),
        })
        {
            await Sql(fence);
            var refused = await Complete("fenced-1", "u1", "c1");
            Assert.True(refused.Status == 503 && refused.Headers.RetryAfter.ToString() == "1", $"a write while fenced ({fence}): {refused}");
            Assert.Equal("tenant-moving", refused.Json.Str("code"));
            Assert.Equal("open", (await FindEnrolment(assignment, "u1")).Str("status")); // reads go on, nothing was stored
            await Sql(lift);
        }
        (await Complete("fenced-1", "u1", "c1")).AssertStatus(200);
        Assert.Equal("complete", (await FindEnrolment(assignment, "u1")).Str("status"));
    }

    /// <summary>
    /// `tenants move` there and back under load (PRODUCT.md, "Scale-out"): completions sent all along are answered 200 or
    /// 503 with Retry-After (retried), never anything else; every one answered 200 is in the store afterwards, in the
    /// tenant's new shard only; its audit chain verifies; and a change-feed cursor taken before the first move carries
    /// on after both: it sees every change it had not seen, none lost.
    /// </summary>
    [Fact]
    public async Task A_tenant_moved_to_another_shard_and_back_under_load_loses_no_acknowledged_write_and_its_cursor_carries_on()
    {
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        await EnsureDatabase(SecondConnectionString);
        if ((await store.ListShards()).All(s => s.DatabaseId != Shard))
        {
            var add = await CliTests.Cli("shards", "add", Shard, SecondConnectionString);
            Assert.True(add.ExitCode == 0, $"shards add: {add}");
        }
        await store.Advanced.MarkDatabaseFullAsync(Shard, CancellationToken.None);

        var tenant = "eu-west-2_Move" + Scenarios.RandomLetters(8);
        var added = await CliTests.Cli("tenants", "add", tenant, "--shard", TenantPool.HomeShard);
        Assert.True(added.ExitCode == 0, $"tenants add: {added}");
        var auth = Basic(tenant, added.LastLine);
        var users = Enumerable.Range(1, 40).Select(i => $"u{i}").ToArray();
        try
        {
            await Identity.Eventually(async () =>
            {
                var r = await Host.Send(HttpMethod.Put, "/content/c1", auth, Scenarios.ToJson(new { title = "Phishing basics" }));
                return (r.Status is 200 or 201, $"PUT /content/c1 answered {r.Status}: {r.Body}");
            }, "the service accepts the new tenant", TimeSpan.FromSeconds(30));
            await SetMembers("a1", users, auth);
            var assignment = await CreateAssignment("a1", "c1", auth: auth);
            Assert.Equal(users.Length, (await ListAll($"/assignments/{assignment}/enrolments", auth: auth)).Count);
            // A reader's position before any move: every change so far read, the cursor kept.
            var seen = new HashSet<string>();
            var cursor = await ReadFeed(auth, null, seen, expectAtLeast: users.Length);

            // Load through both moves: one completion at a time, each retried while it answers 503.
            var acknowledged = new System.Collections.Concurrent.ConcurrentBag<string>();
            var refused = 0;
            using var stop = new CancellationTokenSource();
            var load = Task.Run(async () =>
            {
                for (var i = 0; !stop.IsCancellationRequested || i < 10; i++)
                {
                    var user = users[i % users.Length];
                    while (true)
                    {
                        var r = await Complete($"move-{i}", user, "c1", auth: auth);
                        if (r.Status == 200) { acknowledged.Add(user); break; }
                        Assert.True(r.Status == 503 && r.Headers.RetryAfter.ToString() == "1" && r.Body.Contains("tenant-moving", StringComparison.Ordinal),
                            $"a completion during a move must answer 200, or 503 tenant-moving with Retry-After: 1; got {r}");
                        Interlocked.Increment(ref refused);
                        await Task.Delay(200);
                    }
                    if (i >= users.Length) await Task.Delay(50);
                }
            });

            foreach (var (to, from) in new[] { (Shard, TenantPool.HomeShard), (TenantPool.HomeShard, Shard) })
            {
                var moved = await CliTests.Cli("tenants", "move", tenant, "--to", to);
                Assert.True(moved.ExitCode == 0, $"tenants move --to {to}: {moved}");
                Assert.Contains("audit chain verified on both sides", moved.StdOut, StringComparison.Ordinal);
                Assert.Equal(to, await store.ShardOf(tenant));
                var (there, elsewhere) = to == Shard ? (SecondConnectionString, AppFixture.ConnectionString) : (AppFixture.ConnectionString, SecondConnectionString);
                foreach (var table in new[] { "mt_events", "mt_streams", "mt_doc_enrolment", "mt_doc_assignment", "audit_chain", "change_feed_positions" })
                {
                    Assert.True(await Count(there, table, tenant) > 0, $"{table} of tenant {tenant} has rows in its new shard {to}");
                    Assert.True(await Count(elsewhere, table, tenant) == 0, $"{table} of tenant {tenant} still has rows in shard {from}, which it left");
                }
            }
            await stop.CancelAsync();
            await load;

            // Every acknowledged completion is stored (in the shard the tenant is in now), and the chain verifies there.
            var enrolments = await ListAll($"/assignments/{assignment}/enrolments", auth: auth);
            foreach (var user in acknowledged.Distinct())
                Assert.Equal("complete", enrolments.Single(e => e.Str("userId") == user).Str("status"));
            await AuditChecks.AssertIntact(Host.Services, tenant);
            var verify = await CliTests.Cli("audit", "verify", "--tenant", tenant);
            Assert.True(verify.ExitCode == 0, $"audit verify after two moves: {verify}");
            // The export an auditor keeps, checked by the shipped script: checkpoints of three epochs (form 2 from the
            // first shard, form 3 after each move), only the latest epoch's ranges recomputable from the sequences.
            var export = (await Get("/audit/export", auth)).AssertStatus(200);
            Assert.Contains("\"form\":3", export.Body, StringComparison.Ordinal);
            var (exit, output) = await AuditChecks.RunShippedVerifier(export.Body);
            Assert.True(exit == 0, $"docs/verify_export.py over the moved tenant's export: {output}");

            // The cursor of before the moves: every completion's change arrives (some may come again), none is missing.
            var completions = enrolments.Where(e => e.Str("status") == "complete").Select(e => e.Str("id")).ToHashSet();
            await ReadFeed(auth, cursor, seen, expectAtLeast: 0, until: () => completions.All(id => seen.Contains(id + ":complete")));

            // Evidence still holds after the moves: the last event of a stream deleted with its chain link (and the
            // stream's version lowered, so the chain itself looks whole) breaks the new epoch's range digest.
            var streamId = Guid.Parse(enrolments.First(e => e.Str("status") == "complete").Str("id"));
            await using (var connection = new NpgsqlConnection(AppFixture.ConnectionString))
            {
                await connection.OpenAsync();
                foreach (var sql in new[]
                {
                    "delete from enrolment.audit_chain where tenant_id = $1 and stream_id = $2 and version = (select max(version) from enrolment.audit_chain where tenant_id = $1 and stream_id = $2)",
                    "delete from enrolment.mt_events where tenant_id = $1 and stream_id = $2 and version = (select max(version) from enrolment.mt_events where tenant_id = $1 and stream_id = $2)",
                    "update enrolment.mt_streams set version = version - 1 where tenant_id = $1 and id = $2",
                })
                {
                    await using var tamper = new NpgsqlCommand(sql, connection);
                    tamper.Parameters.AddWithValue(tenant);
                    tamper.Parameters.AddWithValue(streamId);
                    await tamper.ExecuteNonQueryAsync();
                }
            }
            var tampered = await CliTests.Cli("audit", "verify", "--tenant", tenant);
            Assert.True(tampered.ExitCode != 0 && tampered.StdOut.Contains("no longer match", StringComparison.Ordinal),
                $"audit verify after a stream's tail was deleted in the moved tenant's shard: {tampered}");
        }
        finally
        {
            await store.Advanced.DeleteAllTenantDataAsync(tenant, CancellationToken.None);
            await store.Advanced.RemoveTenantFromShardAsync(tenant, CancellationToken.None);
        }
    }

    /// <summary>Reads the feed from a cursor until <paramref name="until"/> holds; records "{enrolmentId}:{status}" of each change.</summary>
    private async Task<string?> ReadFeed(string auth, string? cursor, HashSet<string> seen, int expectAtLeast, Func<bool>? until = null)
    {
        var read = 0;
        await Identity.Eventually(async () =>
        {
            while (true)
            {
                var page = (await Get("/changes?limit=1000" + (cursor is null ? "" : "&after=" + cursor), auth)).AssertStatus(200).Json;
                var items = page["items"]!.AsArray();
                foreach (var item in items) { seen.Add($"{item!.Str("enrolmentId")}:{item.Str("newStatus")}"); read++; }
                cursor = page.Str("nextCursor");
                if (items.Count == 0) break;
            }
            return (read >= expectAtLeast && (until?.Invoke() ?? true), $"read {read} changes from the feed, seen {seen.Count}");
        }, "the change feed delivers what the test waits for", TimeSpan.FromSeconds(60));
        return cursor;
    }

    private static async Task<long> Count(string connectionString, string table, string tenant)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"select count(*) from enrolment.{table} where tenant_id = $1", connection);
        command.Parameters.AddWithValue(tenant);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static async Task EnsureDatabase(string connectionString)
    {
        var name = new NpgsqlConnectionStringBuilder(connectionString).Database!;
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Database = "postgres" }.ConnectionString);
        await connection.OpenAsync();
        await using var exists = new NpgsqlCommand("select count(*) from pg_database where datname = $1", connection);
        exists.Parameters.AddWithValue(name);
        if ((long)(await exists.ExecuteScalarAsync())! == 0)
        {
            await using var create = new NpgsqlCommand($"create database \"{name}\"", connection);
            await create.ExecuteNonQueryAsync();
        }
    }
}
