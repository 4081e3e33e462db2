using Enrolment.Api.Infrastructure;
using System.Diagnostics;
using Enrolment.Api.Infrastructure.Sql;
using JasperFx.CommandLine;
using Marten;
using Npgsql;

namespace Enrolment.Api.Features.Enrolments;

public sealed class RebuildEnrolmentsInput : NetCoreInput
{
    [Description("rebuild")]
    public string Action { get; set; } = "rebuild";

    [Description("Enrolment streams per transaction (default 2000)")]
    [FlagAlias("batch")]
    public int BatchFlag { get; set; } = 2_000;

    [Description("Start from the first stream even if an earlier rebuild was interrupted (by default it resumes)")]
    [FlagAlias("restart")]
    public bool RestartFlag { get; set; }
}

/// <summary>
/// `./build/run.sh enrolments rebuild`: refolds every enrolment document from its events while the service keeps
/// serving (<see cref="EnrolmentRebuild"/>). Safe to interrupt and run again: it resumes where it stopped.
/// </summary>
[Description("Rebuild the enrolment documents from their event streams, in place, while the service runs", Name = "enrolments")]
public sealed class RebuildEnrolmentsCommand : JasperFxAsyncCommand<RebuildEnrolmentsInput>
{
    public RebuildEnrolmentsCommand() => Usage("Rebuild every enrolment document (resumes an interrupted rebuild)").Arguments(x => x.Action);

    public override async Task<bool> Execute(RebuildEnrolmentsInput input)
    {
        if (input.Action != "rebuild") return Fail($"Unknown action '{input.Action}': the only action is 'rebuild'.");
        if (input.BatchFlag is < 1 or > 50_000) return Fail("--batch must be between 1 and 50000.");
        using var host = input.BuildHost();
        var store = host.Services.GetRequiredService<IDocumentStore>();
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
        var ct = cancel.Token;

        try
        {
            await store.Storage.ApplyAllConfiguredChangesToDatabaseAsync();
            // Shard by shard: each database has its own streams, documents and rebuild position.
            foreach (var shard in await store.Shards())
            {
                var name = TenantPool.ShardName(shard);
                var rebuild = new EnrolmentRebuild(store, TenantPool.DataSourceOf(shard));
                var (totalStreams, totalEvents) = await rebuild.Totals(ct);
                var position = await rebuild.Resume(input.RestartFlag, ct);
                if (position is not null)
                    Console.WriteLine($"Shard {name}: resuming the rebuild started at {position.StartedAt:u}: {position.Streams:N0} of {totalStreams:N0} enrolments were done.");
                position ??= new EnrolmentRebuild.Position("", Guid.Empty, 0, 0, DateTimeOffset.UtcNow);
                Console.WriteLine($"Shard {name}: rebuilding {totalStreams:N0} enrolment documents from {totalEvents:N0} events, {input.BatchFlag:N0} per transaction. Readers keep seeing the current documents until each is rewritten.");

                var clock = Stopwatch.StartNew();
                var startEvents = position.Events;
                var lastReport = TimeSpan.Zero;
                long written = 0;
                // Batch n is written while batch n+1 is read and folded (positions are saved in order, one per batch).
                var reading = rebuild.Read(position, input.BatchFlag, ct);
                while (await reading is { } batch)
                {
                    reading = rebuild.Read(batch.Next, input.BatchFlag, ct);
                    written += await rebuild.Write(batch, ct);
                    position = batch.Next;
                    if (clock.Elapsed - lastReport >= TimeSpan.FromSeconds(5))
                    {
                        lastReport = clock.Elapsed;
                        Report(position, totalStreams, totalEvents, position.Events - startEvents, clock.Elapsed);
                    }
                }
                await rebuild.Finish(ct);
                var rate = (position.Events - startEvents) / Math.Max(clock.Elapsed.TotalSeconds, 0.001);
                Console.WriteLine($"Shard {name}: rebuilt {position.Streams:N0} enrolment documents from {position.Events:N0} events in {clock.Elapsed.TotalSeconds:F0} s ({rate:N0} events/s): " +
                    $"{written:N0} rewritten, the others already equal to their refold.");
            }
            return true;
        }
        catch (OperationCanceledException)
        {
            return Fail("Rebuild interrupted. Every document is either the old or the rebuilt one; run `enrolments rebuild` again to resume.");
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            return Fail($"Rebuild failed: {e.Message}. Every document is either the old or the rebuilt one; fix the cause (is PostgreSQL reachable?) and run `enrolments rebuild` again to resume.");
        }
    }

    private static void Report(EnrolmentRebuild.Position p, long totalStreams, long totalEvents, long eventsThisRun, TimeSpan elapsed)
    {
        var rate = eventsThisRun / Math.Max(elapsed.TotalSeconds, 0.001);
        var left = rate > 0 ? TimeSpan.FromSeconds(Math.Max(0, totalEvents - p.Events) / rate) : TimeSpan.Zero;
        var percent = totalStreams == 0 ? 100 : 100.0 * p.Streams / totalStreams;
        Console.WriteLine($"{percent,5:F1}%  {p.Streams:N0} of {totalStreams:N0} enrolments, {p.Events:N0} events, {rate:N0} events/s, about {left:hh\\:mm\\:ss} left");
    }

    private static bool Fail(string message)
    {
        Console.Error.WriteLine(message);
        return false;
    }
}
