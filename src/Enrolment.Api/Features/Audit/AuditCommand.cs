using Enrolment.Api.Infrastructure;
using System.Diagnostics;
using Enrolment.Api.Infrastructure.Sql;
using JasperFx.CommandLine;
using Marten;

namespace Enrolment.Api.Features.Audit;

public sealed class AuditInput : NetCoreInput
{
    [Description("verify | checkpoint | backfill")]
    public string Action { get; set; } = "";

    [Description("Only this tenant (verify)")]
    [FlagAlias("tenant")]
    public string TenantFlag { get; set; } = "";

    [Description("Rows read per page (verify), streams per page (backfill)")]
    [FlagAlias("page-size")]
    public int PageSizeFlag { get; set; } = 10_000;
}

/// <summary>
/// `audit verify [--tenant T]` recomputes every event's hash and chain link and each tenant's checkpoint chain and its
/// latest heads, reading in pages. Exit 0: intact (counts and the latest anchor hashes, for the auditor to keep);
/// 1: the first broken link, named; 2: the store cannot be read. `audit checkpoint` takes a checkpoint now;
/// `audit backfill` chains events stored before the upgrade that added the chain.
/// </summary>
[Description("Verify the tamper-evident hash chain, take a checkpoint, or back-fill the chain after an upgrade", Name = "audit")]
public sealed class AuditCommand : JasperFxAsyncCommand<AuditInput>
{
    public AuditCommand()
    {
        Usage("verify, checkpoint or backfill").Arguments(x => x.Action);
    }

    public override async Task<bool> Execute(AuditInput input)
    {
        using var host = input.BuildHost();
        var tables = host.Services.GetRequiredService<AuditTables>();
        var checkpoints = host.Services.GetRequiredService<AuditCheckpoints>();
        var pageSize = Math.Clamp(input.PageSizeFlag, 100, 100_000);
        try
        {
            await host.Services.GetRequiredService<IDocumentStore>().Storage.ApplyAllConfiguredChangesToDatabaseAsync();
            switch (input.Action)
            {
                case "verify":
                    return await Verify(tables, checkpoints, input.TenantFlag, pageSize);
                case "checkpoint":
                {
                    var round = await checkpoints.Take(wait: true, CancellationToken.None);
                    Console.Out.WriteLine(FormattableString.Invariant($"Took {round.Taken} checkpoint(s) over {round.Events} new chain row(s) in {round.Elapsed.TotalMilliseconds:F0} ms."));
                    return true;
                }
                case "backfill":
                {
                    var (streams, events) = (0, 0);
                    foreach (var shard in await host.Services.GetRequiredService<IDocumentStore>().Shards())
                    {
                        var (tenant, stream) = ("", Guid.Empty);
                        while (true)
                        {
                            var page = await tables.Backfill(TenantPool.DataSourceOf(shard), tenant, stream, Math.Min(pageSize, 5_000), CancellationToken.None);
                            if (page.Streams == 0) break;
                            (tenant, stream) = (page.Tenant, page.Stream);
                            streams += page.Streams;
                            events += page.Events;
                            await Console.Error.WriteLineAsync($"backfill: shard {TenantPool.ShardName(shard)}: {streams} streams looked at, {events} events chained so far");
                        }
                    }
                    Console.Out.WriteLine($"Back-filled {events} event hash(es) over {streams} stream(s).");
                    return true;
                }
                default:
                    await Console.Error.WriteLineAsync($"Unknown action '{input.Action}'. Use verify, checkpoint or backfill.");
                    return false;
            }
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException || e.InnerException is Npgsql.NpgsqlException || e is TimeoutException)
        {
            await Console.Error.WriteLineAsync($"audit {input.Action}: cannot read the event store: {e.Message}. Check ConnectionStrings__Enrolment and that PostgreSQL is up.");
            Environment.Exit(2);
            return false;
        }
    }

    private static async Task<bool> Verify(AuditTables tables, AuditCheckpoints checkpoints, string onlyTenant, int pageSize)
    {
        var clock = Stopwatch.StartNew();
        var tenants = onlyTenant.Length > 0 ? [onlyTenant] : await tables.Tenants(checkpoints.Table, CancellationToken.None);
        long events = 0, streams = 0;
        var anchors = new List<string>();
        foreach (var tenant in tenants)
        {
            var result = await AuditVerifier.Tenant(tables, checkpoints, tenant, pageSize, CancellationToken.None);
            events += result.Events;
            streams += result.Streams;
            if (result.Broken is { } broken)
            {
                await Console.Error.WriteLineAsync($"BROKEN: {broken}");
                if (result.BrokenCount > 1) await Console.Error.WriteLineAsync($"... and {result.BrokenCount - 1} more broken link(s) in tenant {tenant}.");
                Console.Out.WriteLine($"audit verify: FAILED at tenant {tenant}: {broken}");
                return false; // exit code 1
            }
            anchors.Add(result.Anchor is { } a ? $"anchor {tenant} checkpoint {a.Id} {a.Hash} (high-water sequence {a.HighWaterSequence}, {(a.Form == 2 ? $"{a.EventCount} events since checkpoint {a.Id - 1}" : $"{a.StreamCount} streams")}, taken {a.TakenAt})" : $"anchor {tenant} none yet (no checkpoint taken)");
        }
        var seconds = Math.Max(clock.Elapsed.TotalSeconds, 0.001);
        foreach (var line in anchors) Console.Out.WriteLine(line);
        Console.Out.WriteLine($"audit verify: OK: {events} events in {streams} streams of {tenants.Count} tenant(s) intact, in {seconds:F1} s ({events / seconds:F0} events/s). Keep the anchor hashes above outside this database.");
        return true;
    }
}
