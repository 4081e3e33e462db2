using System.Collections.Concurrent;
using System.Diagnostics;
using Enrolment.Domain;
using Enrolment.Reliability.Harness;

namespace Enrolment.Reliability;

/// <summary>
/// Stops the service's PostgreSQL cluster for about 5 s under read and write load, then starts it again. The service
/// must stay up, say so on /health/ready, answer fast with 503 (never hang, never another 5xx), recover on its own
/// within 10 s of the database's return, and have kept every write it acknowledged.
/// </summary>
public sealed class OutageScenario : IScenario
{
    private const int Users = 200;
    private const int Readers = 8;
    private const int Writers = 4;
    private static readonly TimeSpan Before = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Down = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan MaxLatency = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan RecoveryGoal = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan GiveUp = TimeSpan.FromSeconds(60);

    public string Name => "outage";

    public string Promise => "Availability: a PostgreSQL outage under load is reported by readiness and answered with fast 503s (never a hang or another 5xx); the service stays up, recovers on its own within 10 s of the database's return, and keeps every write it acknowledged.";

    public async Task<ScenarioResult> Run(ScenarioContext context, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        if (context.Service is null || context.Database is null)
            return new ScenarioResult(Name, Promise, false, [], ["Needs the service as a separate process and control of its PostgreSQL cluster (run it with ./build/reliability.sh)."], clock.Elapsed);

        var random = new Random(context.Seed);
        var tenant = context.Tenants[0];
        using var setup = context.NewClient();
        var runId = Guid.NewGuid().ToString("N")[..8];
        var audience = $"outage-{runId}";
        var course = $"outage-course-{runId}";
        var users = Enumerable.Range(0, Users).Select(i => $"outage-{runId}-u{i:000}").ToArray();
        await setup.SetMembers(tenant.All, audience, users, ct);
        var assignmentId = await setup.CreateAssignment(tenant.All, new { audienceId = audience, primaryContentId = course, completionPeriod = "P30D" }, ct);
        var enrolments = (await setup.Enrolments(tenant.All, assignmentId, ct)).Select(e => Guid.Parse(e["id"]!.GetValue<string>())).ToArray();

        // One timeline for every record: seconds since the load started.
        var timeline = Stopwatch.StartNew();
        var requests = new ConcurrentBag<Request>();
        var probes = new ConcurrentBag<Probe>();
        var toComplete = new ConcurrentQueue<string>(users);
        using var stopLoad = CancellationTokenSource.CreateLinkedTokenSource(ct);

        async Task Loop(Func<HttpClient, Random, Task<Request>> next, int seed)
        {
            using var http = context.NewClient();
            var own = new Random(seed);
            while (!stopLoad.IsCancellationRequested)
            {
                requests.Add(await next(http, own));
                await Task.Delay(own.Next(5, 25), CancellationToken.None); // a steady load, not a flood: the point is the outage
            }
        }

        async Task<Request> Send(string kind, Func<Task<Outcome>> send, Guid? enrolment = null, string? completionId = null)
        {
            var started = timeline.Elapsed;
            var outcome = await send();
            return new Request(kind, started, outcome, enrolment, completionId);
        }

        Task<Request> Read(HttpClient http, Random own)
        {
            if (own.Next(4) == 0)
                return Send("read", () => http.Get($"/assignments/{assignmentId}/enrolments?limit=20", tenant.Read, CancellationToken.None));
            var id = enrolments[own.Next(enrolments.Length)];
            return Send("read", () => http.Get($"/assignments/{assignmentId}/enrolments/{id}", tenant.Read, CancellationToken.None), id);
        }

        Task<Request> Write(HttpClient http, Random own)
        {
            // Completions while there are users left to complete, reminders otherwise and in between.
            if (own.Next(2) == 0 && toComplete.TryDequeue(out var user))
            {
                var completionId = $"{user}-c1";
                return Send("completion", () => http.Post("/completions", tenant.Write,
                    new { completionId, userId = user, contentId = course, completedAt = Api.Now() }, CancellationToken.None), completionId: completionId);
            }
            var id = enrolments[own.Next(enrolments.Length)];
            return Send("reminder", () => http.Post($"/assignments/{assignmentId}/enrolments/{id}/reminders", tenant.Write, null, CancellationToken.None), id);
        }

        async Task ProbeLoop()
        {
            using var http = context.NewClient();
            http.Timeout = TimeSpan.FromSeconds(20);
            while (!stopLoad.IsCancellationRequested)
            {
                foreach (var path in new[] { "/health/ready", "/health/live" })
                {
                    var started = timeline.Elapsed;
                    probes.Add(new Probe(path, started, await http.Get(path, null, CancellationToken.None)));
                }
                await Task.Delay(200, CancellationToken.None);
            }
        }

        var load = Enumerable.Range(0, Readers).Select(i => Loop(Read, random.Next()))
            .Concat(Enumerable.Range(0, Writers).Select(i => Loop(Write, random.Next())))
            .Append(ProbeLoop()).ToArray();

        await Task.Delay(Before, ct);
        var stopping = timeline.Elapsed;
        await context.Database.Stop();
        var down = timeline.Elapsed;
        context.Log($"PostgreSQL stopped at {down.TotalSeconds:0.0} s (took {(down - stopping).TotalSeconds:0.0} s); holding it down for {Down.TotalSeconds:0} s");
        TimeSpan restarting, back;
        try
        {
            await Task.Delay(Down, ct);
        }
        finally
        {
            // The database is back when it first accepts a connection, which is before pg_ctlcluster returns.
            restarting = timeline.Elapsed;
            using var giveUp = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            var accepting = FirstAcceptedConnection(context.ConnectionString, timeline, giveUp.Token);
            await context.Database.Start();
            back = await accepting ?? timeline.Elapsed;
        }
        context.Log($"PostgreSQL start issued at {restarting.TotalSeconds:0.0} s, accepting connections again at {back.TotalSeconds:0.0} s");

        // Keep the load on until both recoveries are seen (or clearly not coming), then a little longer.
        TimeSpan? FirstReadOk() => requests.Where(r => r.Kind == "read" && r.Started >= back && r.Outcome.Ok).Select(r => (TimeSpan?)(r.Started + r.Outcome.Latency)).Min();
        TimeSpan? FirstReady() => probes.Where(p => p.Path == "/health/ready" && p.Started >= back && p.Outcome.Ok).Select(p => (TimeSpan?)(p.Started + p.Outcome.Latency)).Min();
        while (timeline.Elapsed - back < GiveUp && (FirstReadOk() is null || FirstReady() is null))
            await Task.Delay(100, ct);
        await Task.Delay(TimeSpan.FromSeconds(3), ct);
        await stopLoad.CancelAsync();
        await Task.WhenAll(load);
        var end = timeline.Elapsed;

        var all = requests.ToList();
        // A request "during the outage" is one that was under way at any moment the database was stopping or down.
        var duringOutage = all.Where(r => r.Started < back && r.Started + r.Outcome.Latency > stopping).ToList();
        var other5xx = all.Where(r => r.Outcome.Status >= 500 && r.Outcome.Status != 503).ToList();
        var unanswered = all.Where(r => !r.Outcome.Answered).ToList();
        var nonProblem503 = all.Where(r => r.Outcome.Status == 503 && !r.Outcome.IsProblem).ToList();
        var maxDuring = duringOutage.Count == 0 ? TimeSpan.Zero : duringOutage.Max(r => r.Outcome.Latency);
        var maxOverall = all.Count == 0 ? TimeSpan.Zero : all.Max(r => r.Outcome.Latency);

        // Readiness while the database was certainly down: from a second after the stop (the pool and the check's own
        // timeout) until the start was issued.
        var readyDuringDown = probes.Where(p => p.Path == "/health/ready" && p.Started >= down + TimeSpan.FromSeconds(1) && p.Started + p.Outcome.Latency <= restarting).ToList();
        var live = probes.Where(p => p.Path == "/health/live").ToList();
        // Stragglers: 503s for requests sent after the database was back (pooled connections the restart had cut).
        var late503 = all.Where(r => r.Started >= back && r.Outcome.Status == 503).ToList();
        var lastLate503 = late503.Count == 0 ? (TimeSpan?)null : late503.Max(r => r.Started) - back;
        var readRecovery = FirstReadOk() - back;
        var readyRecovery = FirstReady() - back;
        var stillRunning = context.Service.IsRunning;

        // After recovery every acknowledged write must be in the store.
        var streams = await EventStore.EnrolmentStreams(context.ConnectionString, tenant.TenantId, enrolments, ct);
        var storedCompletions = streams.Values.SelectMany(s => s.OfType<EnrolmentCompleted>()).Select(e => e.CompletionId).ToHashSet(StringComparer.Ordinal);
        var ackedCompletions = all.Where(r => r.Kind == "completion" && r.Outcome.Ok).ToList();
        var missingCompletions = ackedCompletions.Where(r => !storedCompletions.Contains(r.CompletionId!)).Select(r => r.CompletionId!).ToList();
        var ackedReminders = all.Where(r => r.Kind == "reminder" && r.Outcome.Ok).GroupBy(r => r.Enrolment!.Value).ToDictionary(g => g.Key, g => g.Count());
        var missingReminders = ackedReminders.Sum(a => Math.Max(0, a.Value - (streams.TryGetValue(a.Key, out var s) ? s.OfType<ReminderRecorded>().Count() : 0)));
        var verdicts = streams.Select(s => Lifecycle.Check(s.Key, s.Value)).ToList();
        var impossible = verdicts.SelectMany(v => v.ImpossibleTransitions).ToList();

        var findings = new List<string>
        {
            $"timeline: load from 0 s, stop issued at {stopping.TotalSeconds:0.0} s, down at {down.TotalSeconds:0.0} s, start issued at {restarting.TotalSeconds:0.0} s, " +
            $"accepting connections at {back.TotalSeconds:0.0} s, load stopped at {end.TotalSeconds:0.0} s; {Readers} readers, {Writers} writers, health probes every 200 ms",
        };
        if (other5xx.Count > 0) findings.Add($"5xx other than 503: {Tally.Sample(other5xx.Select(r => $"{r.Kind} at {r.Started.TotalSeconds:0.0} s: {r.Outcome}").ToList())}");
        if (unanswered.Count > 0) findings.Add($"no answer: {Tally.Sample(unanswered.Select(r => $"{r.Kind} at {r.Started.TotalSeconds:0.0} s after {r.Outcome.Latency.TotalSeconds:0.0} s: {r.Outcome.Error}").ToList())}");
        if (nonProblem503.Count > 0) findings.Add($"503 without a problem document: {Tally.Sample(nonProblem503.Select(r => r.Outcome.ToString()).ToList())}");
        if (missingCompletions.Count > 0) findings.Add($"acknowledged completions missing from the store: {Tally.Sample(missingCompletions)}");
        if (impossible.Count > 0) findings.Add($"impossible transitions: {Tally.Sample(impossible)}");
        var slow = duringOutage.Where(r => r.Outcome.Latency >= MaxLatency).ToList();
        if (slow.Count > 0) findings.Add($"requests that hung during the outage: {Tally.Sample(slow.Select(r => $"{r.Kind} at {r.Started.TotalSeconds:0.0} s took {r.Outcome.Latency.TotalSeconds:0.0} s: {r.Outcome}").ToList())}");
        var notReady = readyDuringDown.Where(p => p.Outcome.Status != 503).ToList();
        if (notReady.Count > 0) findings.Add($"/health/ready during the outage answered other than 503: {Tally.Sample(notReady.Select(p => $"at {p.Started.TotalSeconds:0.0} s: {p.Outcome}").ToList())}");
        var notLive = live.Where(p => p.Outcome.Status != 200).ToList();
        if (notLive.Count > 0) findings.Add($"/health/live answered other than 200: {Tally.Sample(notLive.Select(p => $"at {p.Started.TotalSeconds:0.0} s: {p.Outcome}").ToList())}");

        var figures = new List<Figure>
        {
            new("requests", Tally.N(all.Count)),
            new("reads by status", Tally.ByStatus(all.Where(r => r.Kind == "read").Select(r => r.Outcome))),
            new("writes by status", Tally.ByStatus(all.Where(r => r.Kind != "read").Select(r => r.Outcome))),
            new("requests under way during the outage, by status", Tally.ByStatus(duringOutage.Select(r => r.Outcome))),
            new("responses ≥ 500 other than 503", Tally.N(other5xx.Count), "0", other5xx.Count == 0),
            new("requests without an answer", Tally.N(unanswered.Count), "0", unanswered.Count == 0),
            new("503 answers that are not problem documents", Tally.N(nonProblem503.Count), "0", nonProblem503.Count == 0),
            new("max latency of a request during the outage", Tally.Seconds(maxDuring), "< 15 s", maxDuring < MaxLatency),
            new("max latency of any request", Tally.Seconds(maxOverall)),
            new("503s sent after the database was back", late503.Count == 0 ? "0" : $"{Tally.N(late503.Count)}, the last one sent {Tally.Seconds(lastLate503)} after its return"),
            new("/health/ready while down", Tally.ByStatus(readyDuringDown.Select(p => p.Outcome)), "all 503",
                readyDuringDown.Count > 0 && readyDuringDown.All(p => p.Outcome.Status == 503)),
            new("/health/live throughout", Tally.ByStatus(live.Select(p => p.Outcome)), "all 200", live.Count > 0 && notLive.Count == 0),
            new("service process still running", stillRunning ? "yes" : "no", "yes", stillRunning),
            new("recovery: database back → first 2xx read", Tally.Seconds(readRecovery), "≤ 10 s", readRecovery is { } rr && rr <= RecoveryGoal),
            new("recovery: database back → /health/ready 200", Tally.Seconds(readyRecovery), "≤ 10 s", readyRecovery is { } yr && yr <= RecoveryGoal),
            new("acknowledged completions found in the store", $"{Tally.N(ackedCompletions.Count - missingCompletions.Count)} of {Tally.N(ackedCompletions.Count)}", "all", missingCompletions.Count == 0),
            new("acknowledged reminders found in the store", $"{Tally.N(ackedReminders.Values.Sum() - missingReminders)} of {Tally.N(ackedReminders.Values.Sum())}", "all", missingReminders == 0),
            new("impossible transitions", Tally.N(impossible.Count), "0", impossible.Count == 0),
        };
        return new ScenarioResult(Name, Promise, figures.All(f => f.Met != false), figures, findings, clock.Elapsed);
    }

    /// <summary>When PostgreSQL first accepts a connection (polled every 50 ms), or null if cancelled before.</summary>
    private static async Task<TimeSpan?> FirstAcceptedConnection(string connectionString, Stopwatch timeline, CancellationToken ct)
    {
        var unpooled = new Npgsql.NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, Timeout = 1 }.ConnectionString;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await using var connection = new Npgsql.NpgsqlConnection(unpooled);
                await connection.OpenAsync(CancellationToken.None);
                return timeline.Elapsed;
            }
            catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException) { }
            try { await Task.Delay(50, ct); } catch (OperationCanceledException) { }
        }
        return null;
    }

    private sealed record Request(string Kind, TimeSpan Started, Outcome Outcome, Guid? Enrolment = null, string? CompletionId = null);

    private sealed record Probe(string Path, TimeSpan Started, Outcome Outcome);
}
