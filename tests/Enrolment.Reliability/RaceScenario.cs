using System.Diagnostics;
using System.Globalization;
using Enrolment.Domain;
using Enrolment.Reliability.Harness;

namespace Enrolment.Reliability;

/// <summary>
/// Rounds of 50 simultaneous writers on ONE enrolment (completions with new and repeated completionIds, reminders,
/// archive, and the user leaving and rejoining its audience) alongside 50 on ONE audience (joins, leaves, member-list
/// replacements) over two assignments. Lost races must be 409s or retried; the streams must obey the lifecycle table,
/// nothing acknowledged may be lost, nothing unacknowledged may be recorded, and the fan-out must converge on the
/// final membership.
/// </summary>
public sealed class RaceScenario : IScenario
{
    private const int Writers = 50;
    private const int Rounds = 6;
    private const int Pool = 40;

    public string Name => "races";

    public string Promise => "Concurrency: with 50 simultaneous writers on one enrolment and 50 on one audience, every lost race is a 409 or retried, the streams obey the lifecycle table, and nothing acknowledged is lost or recorded twice.";

    public async Task<ScenarioResult> Run(ScenarioContext context, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var random = new Random(context.Seed);
        var tenant = context.Tenants[0];
        var auth = tenant.All;
        using var setup = context.NewClient();
        var runId = Guid.NewGuid().ToString("N")[..8];

        // The one enrolment: its user plus two bystanders in a small audience.
        var target = $"race-{runId}-target";
        var targetAudience = $"race-{runId}-one";
        var targetCourse = $"race-{runId}-course-one";
        await setup.SetMembers(auth, targetAudience, [target, $"race-{runId}-by1", $"race-{runId}-by2"], ct);
        var targetAssignment = await setup.CreateAssignment(auth, new { audienceId = targetAudience, primaryContentId = targetCourse, completionPeriod = "P30D" }, ct);
        var enrolment = Guid.Parse((await setup.Enrolments(auth, targetAssignment, ct)).Single(e => e["userId"]!.GetValue<string>() == target)["id"]!.GetValue<string>());
        var enrolmentUrl = $"/assignments/{targetAssignment}/enrolments/{enrolment}";

        // The one audience: a pool of users, half of them members at first, enrolled in two assignments.
        var audience = $"race-{runId}-many";
        var pool = Enumerable.Range(0, Pool).Select(i => $"race-{runId}-p{i:00}").ToArray();
        await setup.SetMembers(auth, audience, pool.Take(Pool / 2), ct);
        var audienceAssignments = new[]
        {
            await setup.CreateAssignment(auth, new { audienceId = audience, primaryContentId = $"race-{runId}-course-a", completionPeriod = "P30D" }, ct),
            await setup.CreateAssignment(auth, new { audienceId = audience, primaryContentId = $"race-{runId}-course-b", completionPeriod = "P30D" }, ct),
        };

        var clients = Enumerable.Range(0, 2 * Writers).Select(_ => context.NewClient()).ToArray();
        var sent = new List<Sent>();
        var completionPayloads = new Dictionary<string, string>(StringComparer.Ordinal);
        var nextCompletion = 0;
        Outcome[] warmUp;
        try
        {
            // One simultaneous read per writer first: the service then has the database connections the rounds need.
            // Opening ~100 at once can exceed the 5 s connect timeout on a busy machine (a 503 that says nothing about
            // races), so that cost is reported here and kept out of the rounds.
            warmUp = await Task.WhenAll(clients.Select(c => c.Get(enrolmentUrl, tenant.Read, ct)));
            for (var round = 1; round <= Rounds; round++)
            {
                // Odd rounds race completions (new and repeated ids) and reminders on the enrolment, reopened first so
                // that one of them can win; even rounds mix in archive, leave and rejoin.
                var completionRound = round % 2 == 1;
                if (completionRound) await Reopen(setup);
                var actions = new List<Func<HttpClient, Task<Sent>>>();
                for (var i = 0; i < Writers; i++) actions.Add(EnrolmentWrite(completionRound ? random.Next(34) : random.Next(50)));
                for (var i = 0; i < Writers; i++) actions.Add(AudienceWrite(random.Next(50)));
                Shuffle(actions, random);

                // All writers are released at once, each on its own connection.
                var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var tasks = actions.Select((action, i) => Task.Run(async () => { await gate.Task; return await action(clients[i]); }, ct)).ToArray();
                gate.SetResult();
                var results = await Task.WhenAll(tasks);
                sent.AddRange(results);

                // The fan-outs these writes started must all finish before the next round (and before judging).
                foreach (var accepted in results.Where(r => r.Outcome.Status == 202))
                    await setup.WaitForOperation(auth, accepted.Outcome.OperationHref(), TimeSpan.FromMinutes(3), ct);
                context.Log($"round {round} ({(completionRound ? "completions" : "mixed")}): {Tally.ByStatus(results.Select(r => r.Outcome))}");
            }
        }
        finally
        {
            foreach (var c in clients) c.Dispose();
        }

        // The enrolment open again, whatever it is now: archive (if not archived), leave (if a member) and rejoin, which reinstates it.
        async Task Reopen(HttpClient http)
        {
            var status = (await http.Get(enrolmentUrl, auth, ct)).Expect(200, $"GET {enrolmentUrl}").Json["status"]!.GetValue<string>();
            if (status == "open") return;
            if (status != "archived") (await http.Post($"{enrolmentUrl}/archive", auth, null, ct)).Expect(200, "archive before reopening");
            var left = await http.Delete($"/audiences/{targetAudience}/members/{target}", auth, ct);
            if (left.Status == 202) await http.WaitForOperation(auth, left.OperationHref(), TimeSpan.FromMinutes(3), ct);
            var joined = (await http.Post($"/audiences/{targetAudience}/members", auth, new { userIds = new[] { target } }, ct)).Expect(202, "rejoin to reopen");
            await http.WaitForOperation(auth, joined.OperationHref(), TimeSpan.FromMinutes(3), ct);
        }

        Func<HttpClient, Task<Sent>> EnrolmentWrite(int dice)
        {
            switch (dice)
            {
                case < 12:
                {
                    var id = $"race-{runId}-c{nextCompletion++:000}";
                    var completedAt = Api.Now();
                    completionPayloads[id] = completedAt;
                    return http => Complete(http, id, completedAt, "completion (new id)");
                }
                case < 20 when completionPayloads.Count > 0:
                {
                    // The same id with the same payload: idempotent, possibly racing the first request for it.
                    var (id, completedAt) = completionPayloads.ElementAt(random.Next(completionPayloads.Count));
                    return http => Complete(http, id, completedAt, "completion (repeated id)");
                }
                case < 34:
                    return async http => new Sent("reminder", await http.Post($"{enrolmentUrl}/reminders", auth, null, ct));
                case < 40:
                    return async http => new Sent("archive", await http.Post($"{enrolmentUrl}/archive", auth, null, ct));
                case < 45:
                    return async http => new Sent("leave (the enrolment's user)", await http.Delete($"/audiences/{targetAudience}/members/{target}", auth, ct));
                default:
                    return async http => new Sent("rejoin (the enrolment's user)", await http.Post($"/audiences/{targetAudience}/members", auth, new { userIds = new[] { target } }, ct));
            }
        }

        async Task<Sent> Complete(HttpClient http, string completionId, string completedAt, string kind) =>
            new(kind, await http.Post("/completions", auth, new { completionId, userId = target, contentId = targetCourse, completedAt }, ct), completionId);

        Func<HttpClient, Task<Sent>> AudienceWrite(int dice)
        {
            switch (dice)
            {
                case < 20:
                {
                    var users = pool.OrderBy(_ => random.Next()).Take(random.Next(1, 4)).ToArray();
                    return async http => new Sent("join", await http.Post($"/audiences/{audience}/members", auth, new { userIds = users }, ct));
                }
                case < 40:
                {
                    var user = pool[random.Next(pool.Length)];
                    return async http => new Sent("leave", await http.Delete($"/audiences/{audience}/members/{user}", auth, ct));
                }
                default:
                {
                    var users = pool.OrderBy(_ => random.Next()).Take(random.Next(Pool / 4, 3 * Pool / 4)).ToArray();
                    return async http => new Sent("replace members", await http.Put($"/audiences/{audience}/members", auth, new { userIds = users }, ct));
                }
            }
        }

        // ── Judge: the store first, then what the API shows.
        var anomalies = new List<string>();
        var affected = new HashSet<Guid>([targetAssignment, .. audienceAssignments]);
        var streams = (await EventStore.EnrolmentStreams(context.ConnectionString, tenant.TenantId, null, ct))
            .Where(s => s.Value.FirstOrDefault() is EnrolmentAssigned a && affected.Contains(a.AssignmentId))
            .ToDictionary(s => s.Key, s => s.Value);
        var verdicts = streams.Select(s => Lifecycle.Check(s.Key, s.Value)).ToList();

        // Failed requests are grouped (kind, status, problem code), with one answer as the example.
        foreach (var failed in sent.Where(s => s.Outcome.Status >= 500 || !s.Outcome.Answered).GroupBy(s => (s.Kind, s.Outcome.Status, Code: ProblemCode(s.Outcome))))
            foreach (var s in failed)
                anomalies.Add($"{failed.Count()} × {failed.Key.Kind} answered {(failed.Key.Status == 0 ? "nothing" : failed.Key.Status)} {failed.Key.Code}, e.g. {failed.First().Outcome}");
        anomalies.AddRange(verdicts.SelectMany(v => v.ImpossibleTransitions).Select(t => $"impossible transition: {t}"));
        anomalies.AddRange(verdicts.SelectMany(v => v.DuplicateCompletionIds.Select(id => $"completionId {id} recorded twice on {v.StreamId}")));

        var events = streams.GetValueOrDefault(enrolment) ?? [];
        var storedCompletions = events.OfType<EnrolmentCompleted>().Select(e => e.CompletionId).ToHashSet(StringComparer.Ordinal);
        var completions = sent.Where(s => s.CompletionId is not null).ToList();
        // A 2xx that says it completed the enrolment must have its event; an event must have had a 2xx that said so.
        var claimed = completions.Where(s => s.Outcome.Ok && s.Outcome.Json["completed"]!.AsArray().Any(c => c!["enrolmentId"]!.GetValue<string>() == enrolment.ToString()))
            .Select(s => s.CompletionId!).ToHashSet(StringComparer.Ordinal);
        anomalies.AddRange(claimed.Where(id => !storedCompletions.Contains(id)).Select(id => $"completion {id} was acknowledged as completing the enrolment but has no event"));
        // Or a rejoin applied it: a reinstatement gives the enrolment the completions recorded before it (PRODUCT.md,
        // "Completions before enrolments"), so a completion acknowledged while the enrolment was archived or already
        // complete (2xx, the enrolment not among those it completed) shows up later as the first completion after a
        // reinstatement. Anything else without a 2xx that reported it is a write the client was told had failed.
        var acknowledged = completions.Where(s => s.Outcome.Ok).Select(s => s.CompletionId!).ToHashSet(StringComparer.Ordinal);
        var appliedOnRejoin = new HashSet<string>(StringComparer.Ordinal);
        var afterReinstatement = false;
        foreach (var e in events)
        {
            if (e is EnrolmentReinstated) afterReinstatement = true;
            else if (e is EnrolmentCompleted c)
            {
                if (afterReinstatement && !claimed.Contains(c.CompletionId) && acknowledged.Contains(c.CompletionId)) appliedOnRejoin.Add(c.CompletionId);
                afterReinstatement = false;
            }
        }
        anomalies.AddRange(storedCompletions.Where(id => !claimed.Contains(id) && !appliedOnRejoin.Contains(id)).Select(id => $"completion event {id} has no 2xx answer that reported it"));

        var remindersAcknowledged = sent.Count(s => s.Kind == "reminder" && s.Outcome.Ok);
        var remindersStored = events.OfType<ReminderRecorded>().Count();
        if (remindersStored != remindersAcknowledged)
            anomalies.Add($"reminders: {remindersAcknowledged} acknowledged with a 2xx, {remindersStored} recorded");

        var views = await EventStore.ViewStatuses(context.ConnectionString, tenant.TenantId, ct);
        anomalies.AddRange(verdicts.Where(v => views.GetValueOrDefault(v.StreamId) != v.FinalStatusName)
            .Select(v => $"stored view of {v.StreamId} says {views.GetValueOrDefault(v.StreamId) ?? "nothing"}, its events fold to {v.FinalStatusName}"));
        var api = (await setup.Get(enrolmentUrl, tenant.Read, ct)).Expect(200, $"GET {enrolmentUrl}");
        var apiStatus = api.Json["status"]!.GetValue<string>();
        var folded = verdicts.Single(v => v.StreamId == enrolment).FinalStatusName;
        if (apiStatus != folded) anomalies.Add($"GET {enrolmentUrl} says {apiStatus}, its events fold to {folded}");

        // Once every fan-out finished, each assignment's enrolments match the final membership exactly.
        var members = (await setup.Get($"/audiences/{audience}/members", tenant.Read, ct)).Expect(200, "GET members").Json["userIds"]!.AsArray()
            .Select(u => u!.GetValue<string>()).ToHashSet(StringComparer.Ordinal);
        foreach (var assignment in audienceAssignments)
        {
            var byUser = (await setup.Enrolments(tenant.Read, assignment, ct)).ToDictionary(e => e["userId"]!.GetValue<string>(), e => e["status"]!.GetValue<string>());
            foreach (var user in pool)
            {
                var status = byUser.GetValueOrDefault(user);
                var member = members.Contains(user);
                if (member ? status is null or "archived" : status is not null and not "archived")
                    anomalies.Add($"fan-out did not converge: {user} is {(member ? "" : "not ")}a member but its enrolment in {assignment} is {status ?? "absent"}");
            }
        }

        var outcomes = sent.Select(s => s.Outcome).ToList();
        var conflicts = sent.Where(s => s.Outcome.Status == 409).GroupBy(s => $"{s.Kind}: {ProblemCode(s.Outcome)}").OrderByDescending(g => g.Count())
            .Select(g => $"{g.Key} {g.Count()}").ToList();
        var figures = new List<Figure>
        {
            new("requests", $"{Tally.N(sent.Count)} in {Rounds} rounds of {Writers} on one enrolment + {Writers} on one audience"),
            new($"warm-up: {clients.Length} simultaneous reads before the first round", Tally.ByStatus(warmUp)),
            new("2xx", Tally.N(outcomes.Count(o => o.Ok))),
            new("409 (lost races and refused transitions)", Tally.N(outcomes.Count(o => o.Status == 409))),
            new("other 4xx", Tally.ByStatus(outcomes.Where(o => o.Status is >= 400 and < 500 and not 409))),
            new("5xx or no answer", Tally.N(outcomes.Count(o => o.Status >= 500 || !o.Answered)), "0", outcomes.All(o => o.Status < 500 && o.Answered)),
            new("409s by request and code", conflicts.Count == 0 ? "none" : string.Join(", ", conflicts)),
            new("by request", string.Join(", ", sent.GroupBy(s => s.Kind).Select(g => $"{g.Key}: {Tally.ByStatus(g.Select(s => s.Outcome))}"))),
            new("the enrolment's stream", $"{events.Count} events: {storedCompletions.Count} completions, {remindersStored} reminders, {events.OfType<EnrolmentArchived>().Count()} archived, {events.OfType<EnrolmentReinstated>().Count()} reinstated ({appliedOnRejoin.Count} of the completions given by a rejoin, recorded earlier with a 2xx); final {folded}"),
            new("enrolment streams checked", $"{Tally.N(streams.Count)} over {affected.Count} assignments; {members.Count} of {Pool} pool users members at the end"),
            new("anomalies", Tally.N(anomalies.Count), "0", anomalies.Count == 0),
        };
        var findings = anomalies.Distinct().Select(a => $"anomaly: {a}").Take(30).ToList();
        if (anomalies.Distinct().Count() > 30) findings.Add($"… and {anomalies.Distinct().Count() - 30} more kinds of anomaly");
        return new ScenarioResult(Name, Promise, figures.All(f => f.Met != false), figures, findings, clock.Elapsed);
    }

    private static string ProblemCode(Outcome outcome)
    {
        if (!outcome.Answered) return outcome.Error ?? "";
        try { return outcome.Json["code"]?.GetValue<string>() ?? "?"; }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException) { return "(not a problem document)"; }
    }

    private static void Shuffle<T>(IList<T> items, Random random)
    {
        for (var i = items.Count - 1; i > 0; i--)
        {
            var j = random.Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    private sealed record Sent(string Kind, Outcome Outcome, string? CompletionId = null);
}
