using Enrolment.Api.Infrastructure;
using System.Diagnostics;
using Enrolment.Api.Features.Audit;
using Enrolment.Api.Infrastructure.Sql;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Enrolment.Api.Tests;

/// <summary>
/// The audit chain seen from any write path's test (docs/audit.md): after a checkpoint, `audit verify` over the tenant
/// finds every chain and anchor intact, and every event of the tenant has its link, so no path wrote outside the chain.
/// </summary>
public static class AuditChecks
{
    public static async Task AssertIntact(IServiceProvider services, string tenantId)
    {
        var checkpoints = services.GetRequiredService<AuditCheckpoints>();
        await checkpoints.Take(wait: true, CancellationToken.None);
        var result = await AuditVerifier.Tenant(services.GetRequiredService<AuditTables>(), checkpoints, tenantId, 100, CancellationToken.None);
        Assert.True(result.Broken is null, $"audit verify of tenant {tenantId}: {result.Broken}");
        Assert.NotNull(result.Anchor);

        await using var command = services.GetRequiredService<NpgsqlDataSource>().CreateCommand(
            "select (select count(*) from enrolment.mt_events where tenant_id = $1), (select count(*) from enrolment.audit_chain where tenant_id = $1)");
        command.Parameters.AddWithValue(tenantId);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        var (events, links) = (reader.GetInt64(0), reader.GetInt64(1));
        Assert.True(events > 0, $"tenant {tenantId} has no events to check");
        Assert.True(events == links, $"tenant {tenantId}: {events} events but {links} links of the audit chain");
        Assert.Equal(events, result.Events);
    }

    /// <summary>Runs docs/verify_export.py (standard library only, written without the service's code) over an export.</summary>
    public static async Task<(int Exit, string Output)> RunShippedVerifier(string export)
    {
        var file = Path.GetTempFileName();
        await File.WriteAllTextAsync(file, export);
        var start = new ProcessStartInfo("python3") { RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(Root(), "docs", "verify_export.py"));
        start.ArgumentList.Add(file);
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        File.Delete(file);
        return (process.ExitCode, output);
    }

    private static string Root()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "docs", "verify_export.py"))) return dir.FullName;
        throw new InvalidOperationException("docs/verify_export.py not found above the test output");
    }
}

/// <summary>
/// Every test starts from an empty store: what Marten's ResetAllData empties (every document table and the event store),
/// and the service's own tables that hold tenant data. Marten's own reset truncates every table named mt_%, and under
/// sharded tenancy each tenant's LIST partition is a table of its own: with the test tenants' partitions that took about
/// a second per test (each TRUNCATE of a relation costs file operations). A DELETE of a few rows costs milliseconds, so
/// documents are deleted through their parent tables; the event tables are still Marten's (truncated, sequence restarted).
/// </summary>
public static class TestData
{
    private static readonly string[] OwnTables = ["audit_chain", "webhook_deliveries", "enrolment_locks", "tenant_fences", "tenant_moves", "tenant_move_positions"];

    public static async Task Reset(IServiceProvider services)
    {
        var store = services.GetRequiredService<Marten.IDocumentStore>();
        foreach (var shard in await store.Shards())
        {
            await shard.DeleteAllEventDataAsync();
            await using var connection = await TenantPool.DataSourceOf(shard).OpenConnectionAsync();
            var tables = new List<string>();
            await using (var find = new NpgsqlCommand("""
                select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
                where n.nspname = 'enrolment' and c.relkind in ('r', 'p') and not c.relispartition
                  and c.relname like 'mt\_%' and c.relname not in ('mt_events', 'mt_streams', 'mt_event_projection_floors', 'mt_tenant_partitions')
                """, connection))
            await using (var reader = await find.ExecuteReaderAsync())
                while (await reader.ReadAsync()) tables.Add(reader.GetString(0));
            var sql = string.Join(";\n", tables.Concat(OwnTables).Select(t => $"delete from enrolment.\"{t}\""));
            await using var delete = new NpgsqlCommand(sql, connection);
            await delete.ExecuteNonQueryAsync();
        }
    }
}
