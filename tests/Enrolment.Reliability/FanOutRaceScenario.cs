using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Enrolment.Domain;
using Enrolment.Reliability.Harness;

namespace Enrolment.Reliability;

/// <summary>
/// Completions racing the fan-outs that enrol their users, with a kill -9 in the middle. Each round starts three
/// fan-outs at once: a new assignment over a 500-user audience, 300 users joining an audience that has an assignment,
/// and 300 archived users rejoining theirs. Then 16 clients record a completion for half of those users while the
/// batches run, and the service is killed at a random instant with requests in flight. After the restart the
/// operations finish, and the event store is judged: every acknowledged completion must be on its user's enrolment.
/// </summary>
public sealed class FanOutRaceScenario : IScenario
{
    private const int Clients = 16;
    // Each kill costs a minute and a half: Wolverine releases a dead node's batches once it has missed two health checks.
    private const int Rounds = 2;

    public string Name => "fanout-races";

    public string Promise => "No acknowledged completion is lost: completions recorded while fan-outs create, enrol and reinstate their users' enrolments are all applied, through a kill -9 in the middle.";

    public async Task<ScenarioResult> Run(ScenarioContext context, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        if (context.Service is null)
            return new ScenarioResult(Name, Promise, false, [], ["Needs the service as a separate process to kill (run it with ./build/reliability.sh)."], clock.Elapsed);

        var random = new Random(context.Seed);
        var tenant = context.Tenants[0];
        var auth = tenant.All;
        using var setup = context.NewClient();
        var runId = Guid.NewGuid().ToString("N")[..8];
        var findings = new List<string>();
        var rounds = new List<string>();
        var acknowledged = new List<(string CompletionId, string UserId, Guid AssignmentId)>();
        var cutOff = 0;
        var killsUnderLoad = 0;
        var otherAnswers = new ConcurrentBag<Outcome>();

        for (var round = 1; round <= Rounds; round++)
        {
            string[] Users(string group, int n) => Enumerable.Range(0, n).Select(i => $"fr-{runId}-{round}-{group}{i:000}").ToArray();
            var course = $"fr-course-{runId}-{round}";
            var (created, joining, rejoining) = (Users("new", 500), Users("join", 300), Users("back", 300));
            var (audienceNew, audienceJoin, audienceBack) = ($"fr-{runId}-{round}-new", $"fr-{runId}-{round}-join", $"fr-{runId}-{round}-back");

            // Set-up, waited for: the new assignment's audience; an assignment whose audience has one member; an
            // assignment whose 300 members were enrolled, then left (archived).
            await setup.SetMembers(auth, audienceNew, created, ct);
            await setup.SetMembers(auth, audienceJoin, [$"fr-{runId}-{round}-first"], ct);
            var joinAssignment = await setup.CreateAssignment(auth, new { audienceId = audienceJoin, primaryContentId = course, completionPeriod = "P30D" }, ct);
            await setup.SetMembers(auth, audienceBack, rejoining, ct);
            var backAssignment = await setup.CreateAssignment(auth, new { audienceId = audienceBack, primaryContentId = course, completionPeriod = "P30D" }, ct);
            await setup.SetMembers(auth, audienceBack, [$"fr-{runId}-{round}-stays"], ct);

            // The three fan-outs, started together and not waited for.
            var fanOuts = await Task.WhenAll(
                setup.Post("/assignments", auth, new { audienceId = audienceNew, primaryContentId = course, completionPeriod = "P30D" }, ct),
                setup.Post($"/audiences/{audienceJoin}/members", auth, new { userIds = joining }, ct),
                setup.Put($"/audiences/{audienceBack}/members", auth, new { userIds = rejoining.Append($"fr-{runId}-{round}-stays").ToArray() }, ct));
            fanOuts[0].Expect(201, "POST /assignments");
            fanOuts[1].Expect(202, $"POST /audiences/{audienceJoin}/members");
            fanOuts[2].Expect(202, $"PUT /audiences/{audienceBack}/members");
            var newAssignment = Guid.Parse(fanOuts[0].Json["assignment"]!["id"]!.GetValue<string>());

            // Half of each group completes, in an order mixing the groups, while the batches run.
            var completers = created.Select(u => (User: u, Assignment: newAssignment))
                .Concat(joining.Select(u => (User: u, Assignment: joinAssignment)))
                .Concat(rejoining.Select(u => (User: u, Assignment: backAssignment)))
                .Where((_, i) => i % 2 == 0)
                .OrderBy(_ => random.Next())
                .ToList();
            var pending = new ConcurrentQueue<(string User, Guid Assignment)>(completers);
            var answers = new ConcurrentBag<(string CompletionId, string UserId, Guid AssignmentId, Outcome Outcome)>();
            var completedAt = Api.Now();
            var inFlight = 0;
            var load = Stopwatch.StartNew();
            var flowing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var workers = Enumerable.Range(0, Clients).Select(_ => Task.Run(async () =>
            {
                using var http = context.NewClient();
                while (pending.TryDequeue(out var next))
                {
                    var completionId = $"{next.User}-done";
                    Interlocked.Increment(ref inFlight);
                    var outcome = await http.Post("/completions", auth, new { completionId, userId = next.User, contentId = course, completedAt }, ct);
                    Interlocked.Decrement(ref inFlight);
                    answers.Add((completionId, next.User, next.Assignment, outcome));
                    if (outcome.Ok) flowing.TrySetResult();
                    if (!outcome.Answered) break;
                }
            }, ct)).ToArray();

            // The kill: a random instant 0.2-1.5 s after the first acknowledgement (completions of users whose batch
            // holds their locks wait for it, so the first answers can take a moment while three fan-outs run).
            await Task.WhenAny(flowing.Task, Task.Delay(TimeSpan.FromMinutes(1), ct));
            var firstAcknowledged = load.Elapsed;
            var killAfter = TimeSpan.FromMilliseconds(random.Next(200, 1500));
            await Task.Delay(killAfter, ct);
            var cut = Volatile.Read(ref inFlight);
            var unsent = pending.Count;
            await context.Service.KillHard();
            await Task.WhenAll(workers);
            if (cut > 0) killsUnderLoad++;
            else findings.Add($"round {round}: the kill at {killAfter.TotalSeconds:0.0} s found no request in flight ({unsent} never sent): it proves less than intended");

            await context.Service.Start(ct);
            var ready = await context.Service.WaitUntilReady(TimeSpan.FromMinutes(3), ct);
            // The fan-outs carry on after the restart (their batches are durable messages).
            foreach (var accepted in fanOuts)
                await setup.WaitForOperation(auth, accepted.OperationHref(), TimeSpan.FromMinutes(3), ct);

            var all = answers.ToList();
            acknowledged.AddRange(all.Where(a => a.Outcome.Ok).Select(a => (a.CompletionId, a.UserId, a.AssignmentId)));
            cutOff += all.Count(a => !a.Outcome.Answered);
            foreach (var other in all.Where(a => a.Outcome.Answered && !a.Outcome.Ok)) otherAnswers.Add(other.Outcome);
            rounds.Add($"round {round}: first acknowledgement {firstAcknowledged.TotalSeconds:0.0} s after the fan-outs started, SIGKILL {killAfter.TotalSeconds:0.0} s later with {cut} completions in flight, " +
                       $"{all.Count(a => a.Outcome.Ok)} acknowledged, {all.Count(a => !a.Outcome.Answered)} cut off, {unsent} never sent; " +
                       $"ready {ready.TotalSeconds:0.0} s after the restart, fan-outs done {load.Elapsed.TotalSeconds:0.0} s after they started");
            context.Log(rounds[^1]);
        }

        // Judge the store: each acknowledged completion must be on the enrolment of its user in its assignment.
        var streams = await EventStore.EnrolmentStreams(context.ConnectionString, tenant.TenantId, null, ct);
        var byUserAndAssignment = streams.Values
            .Where(s => s.FirstOrDefault() is EnrolmentAssigned)
            .ToDictionary(s => (((EnrolmentAssigned)s[0]).UserId, ((EnrolmentAssigned)s[0]).AssignmentId));
        var lost = acknowledged
            .Where(a => !byUserAndAssignment.TryGetValue((a.UserId, a.AssignmentId), out var events)
                        || !events.OfType<EnrolmentCompleted>().Any(e => e.CompletionId == a.CompletionId))
            .Select(a => $"{a.CompletionId} ({(byUserAndAssignment.TryGetValue((a.UserId, a.AssignmentId), out var s) ? Lifecycle.Check(Guid.Empty, s).FinalStatusName : "no enrolment")})")
            .ToList();
        var verdicts = streams.Select(s => Lifecycle.Check(s.Key, s.Value)).ToList();
        var impossible = verdicts.SelectMany(v => v.ImpossibleTransitions).ToList();
        var duplicates = verdicts.SelectMany(v => v.DuplicateCompletionIds.Select(id => $"stream {v.StreamId}: {id}")).ToList();

        if (lost.Count > 0) findings.Add($"lost: {lost.Count} acknowledged completions are not on their enrolment: {Tally.Sample(lost)}");
        if (impossible.Count > 0) findings.Add($"impossible transitions: {Tally.Sample(impossible)}");
        if (duplicates.Count > 0) findings.Add($"duplicates: {Tally.Sample(duplicates)}");
        findings.AddRange(rounds);

        var figures = new List<Figure>
        {
            new("kills with requests in flight", $"{killsUnderLoad} of {Rounds}", $"{Rounds} of {Rounds}", killsUnderLoad == Rounds),
            new("completions acknowledged (2xx)", Tally.N(acknowledged.Count), "> 0", acknowledged.Count > 0),
            new("acknowledged but not applied (lost)", Tally.N(lost.Count), "0", lost.Count == 0),
            new("impossible transitions", Tally.N(impossible.Count), "0", impossible.Count == 0),
            new("duplicates (completionId twice on a stream)", Tally.N(duplicates.Count), "0", duplicates.Count == 0),
            new("cut off by the kill (no answer)", Tally.N(cutOff)),
            new("answered other than 2xx", Tally.ByStatus(otherAnswers)),
        };
        return new ScenarioResult(Name, Promise, figures.All(f => f.Met != false), figures, findings, clock.Elapsed);
    }
}
