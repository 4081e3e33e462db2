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

/// <summary>Every test starts from an empty store: Marten's ResetAllData, and the audit chain, which is ours (it keeps its rows).</summary>
public static class TestData
{
    public static async Task Reset(IServiceProvider services)
    {
        var store = services.GetRequiredService<Marten.IDocumentStore>();
        await store.Advanced.ResetAllData();
        foreach (var shard in await store.Shards())
        {
            await using var command = TenantPool.DataSourceOf(shard).CreateCommand($"truncate enrolment.{AuditChainSql.ChainTable}");
            await command.ExecuteNonQueryAsync();
        }
    }
}
