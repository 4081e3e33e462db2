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
