using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Enrolment.Domain;
using Enrolment.Reliability.Harness;

namespace Enrolment.Reliability;

/// <summary>
/// A webhook receiver that fails half of its requests (500 or a dropped connection), kill -9 of the service while completions
/// flow, restart, and judge against the event store: every committed change of the scenario's enrolments reaches the receiver
/// with a 2xx, signed, in order per enrolment (no later version accepted before an earlier one); duplicates are counted (the
/// promise is at least once).
/// </summary>
public sealed class WebhookScenario : IScenario
{
    private const int Users = 150;
    private const int Clients = 8;

    // A loopback receiver, and pauses short enough that a receiver failing half its requests catches up in minutes.
    private static readonly Dictionary<string, string> Settings = new()
    {
        ["Webhooks__AllowPrivateTargets"] = "true",
        ["Webhooks__FirstRetryDelay"] = "00:00:00.500",
        ["Webhooks__MaxRetryDelay"] = "00:00:04",
        ["Webhooks__Timeout"] = "00:00:05",
        ["Webhooks__PollInterval"] = "00:00:00.200",
    };

    public string Name => "webhooks";

    public string Promise => "Webhooks: every committed change is delivered to a subscribed receiver, signed and in order per enrolment, even across a kill -9 of the service and a receiver that fails half its requests.";

    public async Task<ScenarioResult> Run(ScenarioContext context, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        if (context.Service is null)
            return new ScenarioResult(Name, Promise, false, [], ["Needs the service as a separate process to kill (run it with ./build/reliability.sh)."], clock.Elapsed);

        var findings = new List<string>();
        var random = new Random(context.Seed);
        var tenant = context.Tenants[0];
        var runId = Guid.NewGuid().ToString("N")[..8];
        await context.Service.StartWith(Settings, ct);
        await context.Service.WaitUntilReady(TimeSpan.FromMinutes(3), ct);

        using var receiver = new WebhookReceiver(new Random(context.Seed + 1), failHalf: true);
        receiver.Start();
        using var client = context.NewClient();
        var created = (await client.Post("/webhooks", tenant.All, new { url = receiver.Url }, ct)).Expect(201, "subscribe the receiver");
        var secret = created.Json["secret"]!.GetValue<string>();

        var audience = $"hooks-{runId}";
        var course = $"hooks-course-{runId}";
        var users = Enumerable.Range(0, Users).Select(i => $"hooks-{runId}-u{i:000}").ToArray();
        await client.SetMembers(tenant.All, audience, users, ct);
        var assignmentId = await client.CreateAssignment(tenant.All, new { audienceId = audience, primaryContentId = course, completionPeriod = "P30D" }, ct);

        // Completions from several clients; the kill comes 1-4 s after the first is acknowledged.
        var pending = new ConcurrentQueue<string>(users);
        var acknowledged = 0;
        var flowing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var completedAt = Api.Now();
        async Task Load()
        {
            using var http = context.NewClient();
            while (pending.TryDequeue(out var user))
            {
                var outcome = await http.Post("/completions", tenant.All, new { completionId = $"{user}-c1", userId = user, contentId = course, completedAt }, ct);
                if (outcome.Ok) { Interlocked.Increment(ref acknowledged); flowing.TrySetResult(); }
                if (!outcome.Answered) { pending.Enqueue(user); break; }
            }
        }
        var workers = Enumerable.Range(0, Clients).Select(_ => Task.Run(Load, ct)).ToArray();
        await Task.WhenAny(flowing.Task, Task.Delay(TimeSpan.FromMinutes(1), ct));
        await Task.Delay(TimeSpan.FromMilliseconds(random.Next(1000, 4001)), ct);
        var beforeKill = Volatile.Read(ref acknowledged);
        var deliveredBeforeKill = receiver.Accepted.Count;
        await context.Service.KillHard();
        await Task.WhenAll(workers);
        await context.Service.StartWith(Settings, ct);
        var ready = await context.Service.WaitUntilReady(TimeSpan.FromMinutes(3), ct);
        // The rest of the completions after the restart (those the kill cut off are sent again: idempotent on completionId).
        await Task.WhenAll(Enumerable.Range(0, Clients).Select(_ => Task.Run(Load, ct)));

        // What committed: every event of the scenario's enrolment streams, from the store.
        var streams = (await EventStore.EnrolmentStreams(context.ConnectionString, tenant.TenantId, null, ct))
            .Where(s => s.Value.FirstOrDefault() is EnrolmentAssigned a && a.AssignmentId == assignmentId)
            .ToDictionary(s => s.Key, s => s.Value.Count);
        var expected = streams.SelectMany(s => Enumerable.Range(1, s.Value).Select(v => (s.Key, (long)v))).ToHashSet();

        // Wait for the receiver to have accepted all of them (a failing half means many retries).
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromMinutes(4) && !expected.IsSubsetOf(receiver.Accepted.Select(a => (a.EnrolmentId, a.StreamVersion)).ToHashSet()))
            await Task.Delay(500, ct);

        var accepted = receiver.Accepted.ToList();
        var acceptedKeys = accepted.Select(a => (a.EnrolmentId, a.StreamVersion)).ToList();
        var missing = expected.Except(acceptedKeys).Select(k => $"{k.Item1}@{k.Item2}").ToList();
        var unexpected = acceptedKeys.Distinct().Where(k => !expected.Contains(k)).Select(k => $"{k.EnrolmentId}@{k.StreamVersion}").ToList();
        var duplicates = acceptedKeys.Count - acceptedKeys.Distinct().Count();
        var badSignatures = receiver.All.Count(r => !r.SignatureMatches(secret));
        // In order: for each enrolment, the first acceptance of each version comes in version order.
        var outOfOrder = accepted.GroupBy(a => a.EnrolmentId)
            .Where(g => { var firsts = g.DistinctBy(a => a.StreamVersion).Select(a => a.StreamVersion).ToList(); return !firsts.SequenceEqual(firsts.Order()); })
            .Select(g => g.Key.ToString()).ToList();

        if (missing.Count > 0) findings.Add($"missing: {missing.Count} committed changes never accepted by the receiver: {Tally.Sample(missing)}");
        if (unexpected.Count > 0) findings.Add($"unexpected: deliveries of changes not in the store: {Tally.Sample(unexpected)}");
        if (outOfOrder.Count > 0) findings.Add($"out of order: enrolments whose versions were accepted out of order: {Tally.Sample(outOfOrder)}");
        if (badSignatures > 0) findings.Add($"signatures: {badSignatures} requests whose x-hmac-signature does not verify");
        if (beforeKill == 0) findings.Add("the kill came before any completion was acknowledged: it proves less than intended");
        findings.Add($"kill after {beforeKill} acknowledged completions and {deliveredBeforeKill} accepted deliveries; ready again {ready.TotalSeconds:0.0} s after the restart; " +
                     $"converged {deadline.Elapsed.TotalSeconds:0} s after the load");

        var figures = new List<Figure>
        {
            new("committed changes (events of the scenario's enrolments)", Tally.N(expected.Count), "> 0", expected.Count > 0),
            new("receiver requests (half failed on purpose)", $"{Tally.N(receiver.All.Count)} ({Tally.N(receiver.All.Count(r => !r.Accepted))} failed)"),
            new("accepted by the receiver, distinct", Tally.N(acceptedKeys.Distinct().Count()), "= committed", missing.Count == 0 && unexpected.Count == 0),
            new("missing", Tally.N(missing.Count), "0", missing.Count == 0),
            new("out of order (enrolments)", Tally.N(outOfOrder.Count), "0", outOfOrder.Count == 0),
            new("signatures that do not verify", Tally.N(badSignatures), "0", badSignatures == 0),
            new("duplicates (at least once allows them)", Tally.N(duplicates)),
        };
        return new ScenarioResult(Name, Promise, figures.All(f => f.Met != false), figures, findings, clock.Elapsed);
    }
}
