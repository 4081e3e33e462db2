using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Enrolment.Domain;
using Enrolment.Reliability.Harness;

namespace Enrolment.Reliability;

/// <summary>
/// SIGTERM while 12 clients record completions, 4 read and a batch of 200 time-driven transitions falls due: the
/// service must announce the drain on /health/ready, answer nothing with a 5xx other than 503, keep every completion it
/// acknowledged, leave no due transition unapplied or applied twice once it is back, and exit within
/// Shutdown:DrainDelay + Shutdown:Timeout.
/// </summary>
public sealed class SigtermScenario : IScenario
{
    private const int Users = 300;
    private const int DueUsers = 200;
    private const int Writers = 12;
    private const int Readers = 4;
    private static readonly TimeSpan DrainDelay = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(15);
    // The process also needs a moment to unload after the host stopped.
    private static readonly TimeSpan ExitGoal = DrainDelay + ShutdownTimeout + TimeSpan.FromSeconds(3);

    public string Name => "sigterm";

    public string Promise => "Shutdown: on SIGTERM under load the service says so on /health/ready, answers nothing with a 5xx but 503, keeps every write it acknowledged, hands back or finishes a transitions batch, and exits within Shutdown:DrainDelay + Shutdown:Timeout.";

    public async Task<ScenarioResult> Run(ScenarioContext context, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        if (context.Service is null)
            return new ScenarioResult(Name, Promise, false, [], ["Needs the service as a separate process to signal (run it with ./build/reliability.sh)."], clock.Elapsed);

        await context.Service.StartWith(new Dictionary<string, string>
        {
            ["Shutdown__DrainDelay"] = DrainDelay.ToString(),
            ["Shutdown__Timeout"] = ShutdownTimeout.ToString(),
        }, ct);
        await context.Service.WaitUntilReady(TimeSpan.FromMinutes(2), ct);

        var tenant = context.Tenants[0];
        using var setup = context.NewClient();
        var runId = Guid.NewGuid().ToString("N")[..8];
        var course = $"sigterm-course-{runId}";
        var users = Enumerable.Range(0, Users).Select(i => $"sigterm-{runId}-u{i:000}").ToArray();
        await setup.SetMembers(tenant.All, $"sigterm-{runId}", users, ct);
        var assignmentId = await setup.CreateAssignment(tenant.All, new { audienceId = $"sigterm-{runId}", primaryContentId = course, completionPeriod = "P30D" }, ct);
        var enrolments = (await setup.Enrolments(tenant.All, assignmentId, ct)).Select(e => Guid.Parse(e["id"]!.GetValue<string>())).ToArray();

        // A second audience whose enrolments all fall due a few seconds from now, so that a transitions batch runs at the signal.
        var dueUsers = Enumerable.Range(0, DueUsers).Select(i => $"sigterm-{runId}-due{i:000}").ToArray();
        await setup.SetMembers(tenant.All, $"sigterm-due-{runId}", dueUsers, ct);
        var dueAt = DateTimeOffset.UtcNow.AddSeconds(8);
        var dueAssignment = await setup.CreateAssignment(tenant.All, new { audienceId = $"sigterm-due-{runId}", primaryContentId = $"sigterm-due-course-{runId}", dueDate = Api.Now(dueAt - DateTimeOffset.UtcNow) }, ct);

        var timeline = Stopwatch.StartNew();
        var requests = new ConcurrentBag<Request>();
        var probes = new ConcurrentBag<(TimeSpan At, int Status)>();
        var toComplete = new ConcurrentQueue<string>(users);
        var flowing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stopLoad = CancellationTokenSource.CreateLinkedTokenSource(ct);

        async Task Loop(bool write, int seed)
        {
            var own = new Random(seed);
            using var http = context.NewClient();
            while (!stopLoad.IsCancellationRequested)
            {
                var started = timeline.Elapsed;
                Outcome outcome;
                if (write && toComplete.TryDequeue(out var user))
                {
                    var completionId = $"{user}-c1";
                    outcome = await http.Post("/completions", tenant.Write, new { completionId, userId = user, contentId = course, completedAt = Api.Now() }, CancellationToken.None);
                    requests.Add(new Request("completion", started, outcome, completionId));
                    if (outcome.Ok) flowing.TrySetResult();
                }
                else
                {
                    var id = enrolments[own.Next(enrolments.Length)];
                    outcome = await http.Get($"/assignments/{assignmentId}/enrolments/{id}", tenant.Read, CancellationToken.None);
                    requests.Add(new Request("read", started, outcome, null));
                }
                // Once the process is gone there is nothing to learn from a flood of refused connections.
                if (!outcome.Answered) await Task.Delay(50, CancellationToken.None);
            }
        }

        async Task Probe()
        {
            using var http = context.NewClient();
            while (!stopLoad.IsCancellationRequested)
            {
                var outcome = await http.Get("/health/ready", null, CancellationToken.None);
                probes.Add((timeline.Elapsed, outcome.Status));
                await Task.Delay(100, CancellationToken.None);
            }
        }

        var load = Enumerable.Range(0, Writers).Select(i => Task.Run(() => Loop(true, context.Seed + i), ct))
            .Concat(Enumerable.Range(0, Readers).Select(i => Task.Run(() => Loop(false, context.Seed + 100 + i), ct)))
            .Append(Task.Run(Probe, ct)).ToArray();

        await Task.WhenAny(flowing.Task, Task.Delay(TimeSpan.FromMinutes(1), ct));
        // The signal comes under load and just after the due instant, while its transitions are being applied.
        var signalAt = new[] { TimeSpan.FromSeconds(2), dueAt - DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(300) }.Max();
        if (signalAt > TimeSpan.Zero) await Task.Delay(signalAt, ct);
        var pid = context.Service.ProcessId ?? throw new InvalidOperationException("The service has no process id.");
        var sigterm = timeline.Elapsed;
        if (Kill(pid, 15) != 0) throw new InvalidOperationException($"kill -TERM {pid} failed (errno {Marshal.GetLastWin32Error()})");
        context.Log($"SIGTERM sent to pid {pid} at {sigterm.TotalSeconds:0.0} s, {requests.Count} requests so far");

        var deadline = Stopwatch.StartNew();
        while (context.Service.IsRunning && deadline.Elapsed < ExitGoal + TimeSpan.FromSeconds(30)) await Task.Delay(50, ct);
        var exitedAfter = deadline.Elapsed;
        var exited = !context.Service.IsRunning;
        await Task.Delay(500, ct); // a few refused connections after the exit, then stop the clients
        stopLoad.Cancel();
        await Task.WhenAll(load);
        if (!exited) await context.Service.KillHard();
        var log = context.ServiceLogFiles.Count > 0 ? await File.ReadAllTextAsync(context.ServiceLogFiles[^1], ct) : "";

        await context.Service.Start(ct);
        await context.Service.WaitUntilReady(TimeSpan.FromMinutes(3), ct);

        // Judge the store: every acknowledged completion has its event, and each due enrolment became overdue exactly once.
        var streams = await EventStore.EnrolmentStreams(context.ConnectionString, tenant.TenantId, null, ct);
        var dueStreams = streams.Where(s => s.Value.FirstOrDefault() is EnrolmentAssigned a && a.AssignmentId == dueAssignment).ToList();
        var overdueWait = Stopwatch.StartNew();
        while (dueStreams.Count(s => s.Value.OfType<EnrolmentBecameOverdue>().Any()) < DueUsers && overdueWait.Elapsed < TimeSpan.FromSeconds(90))
        {
            await Task.Delay(1000, ct);
            streams = await EventStore.EnrolmentStreams(context.ConnectionString, tenant.TenantId, null, ct);
            dueStreams = streams.Where(s => s.Value.FirstOrDefault() is EnrolmentAssigned a && a.AssignmentId == dueAssignment).ToList();
        }
        var overdueOnce = dueStreams.Count(s => s.Value.OfType<EnrolmentBecameOverdue>().Count() == 1);
        var overdueTwice = dueStreams.Count(s => s.Value.OfType<EnrolmentBecameOverdue>().Count() > 1);
        var overdueBeforeExit = CountOverdueAtExit(log);
        var completionEvents = streams.SelectMany(s => s.Value.OfType<EnrolmentCompleted>().Select(e => e.CompletionId)).ToHashSet(StringComparer.Ordinal);
        var verdicts = streams.Select(s => Lifecycle.Check(s.Key, s.Value)).ToList();
        var impossible = verdicts.SelectMany(v => v.ImpossibleTransitions).ToList();

        var all = requests.ToList();
        var afterSignal = all.Where(r => r.Started >= sigterm).ToList();
        var acknowledged = all.Where(r => r.Kind == "completion" && r.Outcome.Ok).ToList();
        var missing = acknowledged.Where(r => !completionEvents.Contains(r.CompletionId!)).Select(r => r.CompletionId!).ToList();
        var other5xx = all.Where(r => r.Outcome.Status >= 500 && r.Outcome.Status != 503).ToList();
        var unanswered = afterSignal.Where(r => !r.Outcome.Answered).ToList();
        var cutInFlight = all.Where(r => !r.Outcome.Answered && r.Started < sigterm).ToList();
        var servedInDrain = afterSignal.Count(r => r.Outcome.Ok);
        var refused503 = afterSignal.Count(r => r.Outcome.Status == 503);
        var readyDown = probes.Where(p => p.At >= sigterm && p.Status == 503).Select(p => p.At - sigterm).DefaultIfEmpty(TimeSpan.MaxValue).Min();
        var graceful = log.Contains("Shut down: Kestrel, Wolverine and the time-driven transitions have stopped", StringComparison.Ordinal);

        var findings = new List<string>();
        if (missing.Count > 0) findings.Add($"missing: {missing.Count} acknowledged completions have no event: {Tally.Sample(missing)}");
        if (other5xx.Count > 0) findings.Add($"5xx other than 503: {Tally.Sample(other5xx.Select(r => $"{r.Kind} at {r.Started.TotalSeconds:0.00} s: {r.Outcome}").ToList())}");
        if (cutInFlight.Count > 0) findings.Add($"requests sent before the signal and never answered: {Tally.Sample(cutInFlight.Select(r => $"{r.Kind}: {r.Outcome.Error}").ToList())}");
        if (impossible.Count > 0) findings.Add($"impossible transitions: {Tally.Sample(impossible)}");
        if (!graceful) findings.Add("the service's log does not end with its shutdown line: it did not stop in order");
        findings.Add($"after the signal: {Tally.ByStatus(afterSignal.Where(r => r.Outcome.Answered).Select(r => r.Outcome))}; without an answer (connection refused or closed once the listener stopped): {unanswered.Count} " +
                     $"({Tally.Sample(unanswered.Select(r => r.Outcome.Error ?? "").Distinct().ToList(), 3)})");

        var figures = new List<Figure>
        {
            new("requests (completions, reads)", $"{Tally.N(all.Count)} ({Tally.N(all.Count(r => r.Kind == "completion"))}, {Tally.N(all.Count(r => r.Kind == "read"))})"),
            new("completions acknowledged (2xx)", Tally.N(acknowledged.Count), "> 0", acknowledged.Count > 0),
            new("acknowledged completions missing from the store", Tally.N(missing.Count), "0", missing.Count == 0),
            new("5xx other than 503", Tally.N(other5xx.Count), "0", other5xx.Count == 0),
            new("requests in flight at the signal left unanswered", Tally.N(cutInFlight.Count), "0", cutInFlight.Count == 0),
            new("/health/ready 503 after the signal", readyDown == TimeSpan.MaxValue ? "never" : $"after {readyDown.TotalSeconds:0.00} s", "< drain delay", readyDown < DrainDelay),
            new("served 2xx during the drain / refused 503", $"{Tally.N(servedInDrain)} / {Tally.N(refused503)}"),
            new("exit after SIGTERM", exited ? $"{exitedAfter.TotalSeconds:0.0} s" : "did not exit (killed)", $"≤ {ExitGoal.TotalSeconds:0} s (drain {DrainDelay.TotalSeconds:0} s + timeout {ShutdownTimeout.TotalSeconds:0} s + 3 s)", exited && exitedAfter <= ExitGoal),
            new("stopped in order (shutdown line in the log)", graceful ? "yes" : "no", "yes", graceful),
            new("due enrolments overdue exactly once after the restart", $"{Tally.N(overdueOnce)} of {DueUsers} ({Tally.N(overdueBeforeExit)} applied before the exit)", $"{DueUsers}", overdueOnce == DueUsers),
            new("due enrolments overdue twice", Tally.N(overdueTwice), "0", overdueTwice == 0),
            new("impossible transitions", Tally.N(impossible.Count), "0", impossible.Count == 0),
        };
        return new ScenarioResult(Name, Promise, figures.All(f => f.Met != false), figures, findings, clock.Elapsed);
    }

    /// <summary>Transitions the stopped process logged as applied ("Applying N time-driven transitions ..."), for the report.</summary>
    private static int CountOverdueAtExit(string log) =>
        System.Text.RegularExpressions.Regex.Matches(log, "Applying (\\d+) time-driven transitions").Sum(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));

    private sealed record Request(string Kind, TimeSpan Started, Outcome Outcome, string? CompletionId);

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
