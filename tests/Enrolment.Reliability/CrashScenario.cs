using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Enrolment.Domain;
using Enrolment.Reliability.Harness;

namespace Enrolment.Reliability;

/// <summary>
/// kill -9 while 16 clients record completions, restart, and judge the event store: every completion the service
/// acknowledged with a 2xx has its event, no completionId is recorded twice on a stream, and every stream obeys the
/// lifecycle table (and its stored view agrees with its events). Three kills per run, each on a fresh audience.
/// </summary>
public sealed class CrashScenario : IScenario
{
    // Enough users that the load outlasts the kill: 16 clients record a few hundred a second on 2 cores.
    private const int Users = 1500;
    private const int Clients = 16;
    private const int Kills = 3;

    public string Name => "crash";

    public string Promise => "Durability: every completion acknowledged with a 2xx is in the event store after a kill -9 of the service; no enrolment gets a duplicate or impossible transition.";

    public async Task<ScenarioResult> Run(ScenarioContext context, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        if (context.Service is null)
            return new ScenarioResult(Name, Promise, false, [], ["Needs the service as a separate process to kill (run it with ./build/reliability.sh)."], clock.Elapsed);

        var random = new Random(context.Seed);
        var tenant = context.Tenants[0];
        var auth = tenant.All;
        using var client = context.NewClient();
        var runId = Guid.NewGuid().ToString("N")[..8];
        var findings = new List<string>();
        var rounds = new List<string>();
        var acknowledged = new List<Attempt>();
        var unanswered = new List<Attempt>();
        var answeredOther = new List<Attempt>();
        var assignments = new List<Guid>();
        var killsUnderLoad = 0;

        for (var round = 1; round <= Kills; round++)
        {
            // A fresh audience per kill: every user has exactly one open enrolment whose primary content is the course.
            var audience = $"crash-{runId}-{round}";
            var course = $"crash-course-{runId}-{round}";
            var users = Enumerable.Range(0, Users).Select(i => $"crash-{runId}-{round}-u{i:000}").ToArray();
            await client.SetMembers(auth, audience, users, ct);
            var assignmentId = await client.CreateAssignment(auth, new { audienceId = audience, primaryContentId = course, completionPeriod = "P30D" }, ct);
            assignments.Add(assignmentId);

            var pending = new ConcurrentQueue<string>(users);
            var attempts = new ConcurrentBag<Attempt>();
            var completedAt = Api.Now();
            var killAfter = TimeSpan.FromMilliseconds(random.Next(300, 2001));
            var load = Stopwatch.StartNew();
            var inFlight = 0;
            var flowing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var workers = Enumerable.Range(0, Clients).Select(_ => Task.Run(async () =>
            {
                using var http = context.NewClient();
                while (pending.TryDequeue(out var user))
                {
                    var completionId = $"{user}-c1";
                    Interlocked.Increment(ref inFlight);
                    var outcome = await http.Post("/completions", auth, new { completionId, userId = user, contentId = course, completedAt }, ct);
                    Interlocked.Decrement(ref inFlight);
                    attempts.Add(new Attempt(completionId, user, outcome));
                    if (outcome.Ok) flowing.TrySetResult();
                    // Once the service is gone the client stops, as a real one would after a connection error.
                    if (!outcome.Answered) break;
                }
            }, ct)).ToArray();

            // The kill comes a random 0.3-2 s into the load proper: counted from the first acknowledgement, since the first
            // requests after a (re)start can take seconds on a busy machine.
            await Task.WhenAny(flowing.Task, Task.Delay(TimeSpan.FromMinutes(1), ct));
            var firstAcknowledged = load.Elapsed;
            await Task.Delay(killAfter, ct);
            var cut = Volatile.Read(ref inFlight);
            await context.Service.KillHard();
            await Task.WhenAll(workers);
            var killedAt = load.Elapsed;

            await context.Service.Start(ct);
            var ready = await context.Service.WaitUntilReady(TimeSpan.FromMinutes(3), ct);

            var all = attempts.ToList();
            acknowledged.AddRange(all.Where(a => a.Outcome.Ok));
            unanswered.AddRange(all.Where(a => !a.Outcome.Answered));
            answeredOther.AddRange(all.Where(a => a.Outcome.Answered && !a.Outcome.Ok));
            rounds.Add($"kill {round}: first acknowledgement after {firstAcknowledged.TotalSeconds:0.0} s, SIGKILL {killAfter.TotalSeconds:0.0} s later with {cut} requests in flight; " +
                       $"{all.Count(a => a.Outcome.Ok)} acknowledged, {all.Count(a => !a.Outcome.Answered)} cut off, {pending.Count} never sent; ready again {ready.TotalSeconds:0.0} s after the restart");
            context.Log(rounds[^1]);
            if (cut > 0) killsUnderLoad++;
            else findings.Add($"kill {round} found no request in flight ({killedAt.TotalSeconds:0.0} s, {pending.Count} never sent): it proves less than intended");
        }

        // Judge the store, not the API: every enrolment stream of the tenant, read back from mt_events.
        var streams = await EventStore.EnrolmentStreams(context.ConnectionString, tenant.TenantId, null, ct);
        var verdicts = streams.Select(s => Lifecycle.Check(s.Key, s.Value)).ToList();
        var completionEvents = streams.SelectMany(s => s.Value.OfType<EnrolmentCompleted>().Select(e => (Stream: s.Key, e.CompletionId)))
            .ToLookup(e => e.CompletionId, e => e.Stream, StringComparer.Ordinal);
        var crashStreams = streams.Where(s => s.Value.FirstOrDefault() is EnrolmentAssigned a && assignments.Contains(a.AssignmentId)).ToList();

        var missing = acknowledged.Where(a => !completionEvents.Contains(a.CompletionId)).Select(a => a.CompletionId).ToList();
        var found = acknowledged.Count - missing.Count;
        var impossible = verdicts.SelectMany(v => v.ImpossibleTransitions).ToList();
        var duplicates = verdicts.SelectMany(v => v.DuplicateCompletionIds.Select(id => $"stream {v.StreamId}: {id}")).ToList();
        var views = await EventStore.ViewStatuses(context.ConnectionString, tenant.TenantId, ct);
        var viewMismatches = verdicts.Where(v => !views.TryGetValue(v.StreamId, out var status) || status != v.FinalStatusName)
            .Select(v => $"{v.StreamId}: view {(views.TryGetValue(v.StreamId, out var s) ? s : "missing")}, events fold to {v.FinalStatusName}").ToList();
        var cutButCommitted = unanswered.Count(a => completionEvents.Contains(a.CompletionId));
        var completedStreams = crashStreams.Count(s => s.Value.Any(e => e is EnrolmentCompleted));

        if (missing.Count > 0) findings.Add($"missing: {missing.Count} acknowledged completions have no completion event: {Tally.Sample(missing)}");
        if (impossible.Count > 0) findings.Add($"impossible transitions: {Tally.Sample(impossible)}");
        if (duplicates.Count > 0) findings.Add($"duplicates: completionIds recorded twice on one stream: {Tally.Sample(duplicates)}");
        if (viewMismatches.Count > 0) findings.Add($"view ≠ events: {Tally.Sample(viewMismatches)}");
        if (acknowledged.Count == 0) findings.Add("acknowledged: no completion was acknowledged before the kills, so nothing was proved");
        findings.AddRange(rounds);

        var figures = new List<Figure>
        {
            new("kills with requests in flight (SIGKILL under load)", $"{killsUnderLoad} of {Kills}", $"{Kills} of {Kills}", killsUnderLoad == Kills),
            new("completions sent", Tally.N(acknowledged.Count + unanswered.Count + answeredOther.Count)),
            new("acknowledged (2xx)", Tally.N(acknowledged.Count), "> 0", acknowledged.Count > 0),
            new("found in the event store", Tally.N(found), "= acknowledged", found == acknowledged.Count),
            new("missing", Tally.N(missing.Count), "0", missing.Count == 0),
            new("impossible transitions", Tally.N(impossible.Count), "0", impossible.Count == 0),
            new("duplicates (completionId twice on a stream)", Tally.N(duplicates.Count), "0", duplicates.Count == 0),
            new("stored view ≠ events", Tally.N(viewMismatches.Count), "0", viewMismatches.Count == 0),
            new("cut off by the kill (no answer)", $"{Tally.N(unanswered.Count)} ({Tally.N(cutButCommitted)} of them committed anyway)"),
            new("answered other than 2xx", Tally.ByStatus(answeredOther.Select(a => a.Outcome))),
            new("enrolment streams checked", $"{Tally.N(streams.Count)} ({Tally.N(crashStreams.Count)} of this scenario, {Tally.N(completedStreams)} completed)"),
        };
        var passed = figures.All(f => f.Met != false);
        return new ScenarioResult(Name, Promise, passed, figures, findings, clock.Elapsed);
    }

    private sealed record Attempt(string CompletionId, string UserId, Outcome Outcome);
}
