using System.Text.RegularExpressions;
using Enrolment.Api.Infrastructure;
using Enrolment.Domain;
using JasperFx.CommandLine;
using Marten;
using Npgsql;

namespace Enrolment.Api.Features.Tenants;

public sealed class ShardsInput : NetCoreInput
{
    [Description("add | list")]
    public string Action { get; set; } = "";

    [Description("The shard's name, for example eu2 (letters, digits, _ and -, at most 40)")]
    public string Name { get; set; } = "";

    [Description("The Npgsql connection string of the shard's database; it must exist and be owned by the role that connects")]
    public string ConnectionString { get; set; } = "";
}

/// <summary>
/// The pool of shard databases, from the command line against the master (PRODUCT.md, "Scale-out"):
/// `./build/run.sh shards add eu2 "Host=db2;Database=enrolment;Username=enrolment;Password=…"` registers a database and
/// creates the service's tables in it; `shards list` shows each shard's server, tenants, enrolments and size. Running
/// nodes see a new shard within Shards:RefreshInterval (TenantPool.Refresh).
/// </summary>
[Description("Register shard databases in the tenant pool, or list them with their tenants, enrolments and size", Name = "shards")]
public sealed partial class ShardsCommand : JasperFxAsyncCommand<ShardsInput>
{
    [GeneratedRegex("^[A-Za-z0-9_-]{1,40}$")]
    private static partial Regex NamePattern();

    public ShardsCommand()
    {
        Usage("Register a database as a new shard and create the service's tables in it").Arguments(x => x.Action, x => x.Name, x => x.ConnectionString);
        Usage("List the shards").Arguments(x => x.Action);
    }

    public override async Task<bool> Execute(ShardsInput input)
    {
        using var host = input.BuildHost();
        var store = host.Services.GetRequiredService<IDocumentStore>();
        switch (input.Action)
        {
            case "add":
            {
                if (!NamePattern().IsMatch(input.Name))
                    return Fail($"'{input.Name}' is not a valid shard name: use 1–40 letters, digits, _ or -.");
                if ((await store.ListShards()).FirstOrDefault(s => s.DatabaseId == input.Name) is { } existing)
                    return Fail($"Shard {input.Name} is already in the pool ({Server(existing.ConnectionString)}). A shard's database cannot be changed here: its tenants' data is in it.");
                try
                {
                    // Checked before it is registered: a pool entry nobody can connect to would fail every node's rounds.
                    await using var probe = new NpgsqlConnection(input.ConnectionString);
                    await probe.OpenAsync();
                }
                catch (Exception e) when (e is NpgsqlException or ArgumentException or TimeoutException)
                {
                    return Fail($"Cannot connect to the shard's database ({e.Message}). Create the database first (owned by the role in the connection string) and check the connection string; nothing was registered.");
                }
                // Marten's tables (documents and event store with this service's own tables and triggers) before the
                // database joins the pool: running nodes walk every shard of the pool and, where they may create schema
                // objects, create a missing table on first use; registered first, this command and a node created the
                // same index at once and the command failed (42P07, in the scale-out reliability scenario).
                await using (var dataSource = NpgsqlDataSource.Create(input.ConnectionString))
                    await new Marten.Storage.MartenDatabase(Infrastructure.Sql.MartenInternals.Options(store), dataSource, input.Name).ApplyAllConfiguredChangesToDatabaseAsync();
                await store.Advanced.AddDatabaseToPoolAsync(input.Name, input.ConnectionString, CancellationToken.None);
                // Then the rest as `resources setup` makes it at a start: Wolverine's inbox and outbox, and the embedded
                // bus's queue tables (a change writes its integration events into its own shard's queue).
                var database = await store.Storage.FindOrCreateDatabase(input.Name);
                await database.ApplyAllConfiguredChangesToDatabaseAsync();
                // Running nodes set up Wolverine's side of a shard new to them as well (ShardPoolRefresh): where one
                // creates the same table or index at the same moment, the loser fails with a duplicate; run again, the
                // setup finds it there and goes on.
                for (var attempt = 1; ; attempt++)
                {
                    try
                    {
                        await JasperFx.Resources.ResourceHostExtensions.SetupResources(host);
                        break;
                    }
                    catch (Exception e) when (attempt < 5 && TenantPool.IsDuplicateObject(e))
                    {
                        await Task.Delay(TimeSpan.FromSeconds(1));
                    }
                }
                Console.Out.WriteLine($"Shard {input.Name} added ({Server(input.ConnectionString)}); its tables are created. Place tenants there with `tenants add <tenantId> --shard {input.Name}`.");
                return true;
            }
            case "list":
            {
                var enrolments = store.Options.FindOrResolveDocumentType(typeof(EnrolmentState)).TableName.QualifiedName;
                foreach (var shard in await store.ListShards())
                {
                    string size;
                    try
                    {
                        await using var connection = new NpgsqlConnection(shard.ConnectionString);
                        await connection.OpenAsync();
                        await using var command = new NpgsqlCommand(
                            $"select (select count(*) from {enrolments}), pg_size_pretty(pg_database_size(current_database()))", connection);
                        await using var reader = await command.ExecuteReaderAsync();
                        await reader.ReadAsync();
                        size = $"{reader.GetInt64(0)} enrolments\t{reader.GetString(1)}";
                    }
                    catch (Exception e) when (e is NpgsqlException or TimeoutException)
                    {
                        size = $"unreachable ({e.Message})";
                    }
                    Console.Out.WriteLine($"{shard.DatabaseId}\t{Server(shard.ConnectionString)}\t{shard.TenantCount} tenants{(shard.IsFull ? " (full)" : "")}\t{size}");
                }
                return true;
            }
            default:
                return Fail($"Unknown action '{input.Action}'. Use add or list.");
        }
    }

    /// <summary>Where a shard is, for an operator: host, port and database, never the password.</summary>
    private static string Server(string connectionString)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString);
        return $"{b.Host}:{b.Port}/{b.Database}";
    }

    private static bool Fail(string message)
    {
        Console.Error.WriteLine(message);
        return false;
    }
}
