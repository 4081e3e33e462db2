using System.Diagnostics;
using Enrolment.Domain;
using Enrolment.Reliability.Harness;
using Npgsql;

namespace Enrolment.Reliability;

/// <summary>
/// `enrolments rebuild` on a live service: readers fetch every enrolment by id while it runs, it is killed with
/// SIGKILL in the middle, run again (it must resume), and afterwards every stored enrolment agrees with its events.
/// </summary>
public sealed class RebuildScenario : IScenario
{
    public string Name => "rebuild";

    public string Promise => "A rebuild of the enrolment documents never leaves an enrolment without its document, survives a kill -9 and resumes, and ends with every document equal to its events.";

    public async Task<ScenarioResult> Run(ScenarioContext context, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        if (context.StartCommand is null)
            return new ScenarioResult(Name, Promise, false, [], ["Needs the service's commands as separate processes (run it with ./build/reliability.sh)."], clock.Elapsed);

        var tenant = context.Tenants[0];
        using var client = context.NewClient();
        var runId = Guid.NewGuid().ToString("N")[..8];
        var users = Enumerable.Range(0, (int)Math.Max(200, 4000 * context.Scale)).Select(i => $"rb-{runId}-{i:0000}").ToArray();
        await client.SetMembers(tenant.All, $"rb-{runId}", users, ct);
        var assignmentId = await client.CreateAssignment(tenant.All, new { audienceId = $"rb-{runId}", primaryContentId = $"rb-course-{runId}", completionPeriod = "P30D" }, ct);
        var ids = (await client.Enrolments(tenant.All, assignmentId, ct)).Select(e => e["id"]!.GetValue<string>()).ToArray();
        context.Log($"{ids.Length} enrolments; readers start");

        using var stopReaders = CancellationTokenSource.CreateLinkedTokenSource(ct);
        long reads = 0, missing = 0;
        var random = new Random(context.Seed);
        var readers = Enumerable.Range(0, 4).Select(r => Task.Run(async () =>
        {
            using var readerClient = context.NewClient();
            var rnd = new Random(context.Seed + r);
            while (!stopReaders.IsCancellationRequested)
            {
                var id = ids[rnd.Next(ids.Length)];
                try
                {
                    var outcome = await readerClient.Get($"/assignments/{assignmentId}/enrolments/{id}", tenant.Read, stopReaders.Token);
                    Interlocked.Increment(ref reads);
                    if (outcome.Status != 200) Interlocked.Increment(ref missing);
                }
                catch (OperationCanceledException) when (stopReaders.IsCancellationRequested) { }
            }
        })).ToArray();

        var findings = new List<string>();
        // First run: killed as soon as it has committed some batches.
        using (var first = context.StartCommand(["enrolments", "rebuild", "--restart", "--batch", "50"]))
        {
            var killed = false;
            while (!first.HasExited && clock.Elapsed < TimeSpan.FromMinutes(3))
            {
                if (await Progress(context.ConnectionString, ct) > 0) { first.Kill(entireProcessTree: true); killed = true; break; }
                await Task.Delay(20, ct);
            }
            await first.WaitForExitAsync(ct);
            if (!killed) findings.Add($"The first rebuild ended (exit {first.ExitCode}) before it could be killed mid-way: {await first.StandardError.ReadToEndAsync(ct)}");
        }
        var afterKill = await Progress(context.ConnectionString, ct);
        context.Log($"killed with {afterKill} enrolments rebuilt; running it again");

        string output;
        int exit;
        using (var second = context.StartCommand(["enrolments", "rebuild", "--batch", "50"]))
        {
            var stdout = second.StandardOutput.ReadToEndAsync(ct);
            var stderr = second.StandardError.ReadToEndAsync(ct);
            await second.WaitForExitAsync(ct);
            output = await stdout + await stderr;
            exit = second.ExitCode;
        }
        await stopReaders.CancelAsync();
        await Task.WhenAll(readers);

        if (exit != 0) findings.Add($"The resumed rebuild exited {exit}: {output}");
        // "Shard <name>: resuming the rebuild started at …" (RebuildEnrolmentsCommand), one line per shard.
        var resumed = output.Contains("resuming the rebuild", StringComparison.OrdinalIgnoreCase);
        if (afterKill > 0 && !resumed) findings.Add("The second rebuild did not resume where the killed one stopped.");
        if (missing > 0) findings.Add($"{missing} of {reads} reads by id during the rebuild did not answer 200.");

        // Afterwards every stored document's status is what its events give.
        var streams = await EventStore.EnrolmentStreams(context.ConnectionString, tenant.TenantId, null, ct);
        var stored = await EventStore.ViewStatuses(context.ConnectionString, tenant.TenantId, ct);
        var differing = streams.Where(s => !stored.TryGetValue(s.Key, out var status) || status != EnrolmentRules.Lower(EnrolmentState.Replay(s.Value)!.Status)).Select(s => s.Key).ToList();
        if (differing.Count > 0) findings.Add($"{differing.Count} enrolments' documents differ from their events, e.g. {differing[0]}.");

        return new ScenarioResult(Name, Promise, findings.Count == 0,
        [
            new("enrolments", ids.Length.ToString("N0")),
            new("reads by id during the rebuild", reads.ToString("N0")),
            new("reads that did not answer 200", missing.ToString("N0"), "0", missing == 0),
            new("enrolments rebuilt before the kill -9", afterKill.ToString("N0")),
            new("second run resumed", resumed ? "yes" : "no", "yes", resumed || afterKill == 0),
            new("documents differing from their events", differing.Count.ToString("N0"), "0", differing.Count == 0),
        ], findings, clock.Elapsed);
    }

    private static async Task<long> Progress(string connectionString, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        await using var command = new NpgsqlCommand("select coalesce((select streams from enrolment.enrolment_rebuild_progress), 0)", connection);
        try { return (long)(await command.ExecuteScalarAsync(ct))!; }
        catch (PostgresException e) when (e.SqlState == "42P01") { return 0; } // the table appears with the first run
    }
}
