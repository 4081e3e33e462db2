using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Enrolment.Domain;
using Enrolment.Reliability.Harness;
using Npgsql;

namespace Enrolment.Reliability;

/// <summary>
/// Issue #31 (PRODUCT.md, "Scale-out"): the master and shard `default` on the reliability cluster, a second shard on a
/// second PostgreSQL cluster (`shards add`), tenants in both (`tenants add --shard`), three nodes of the service with the
/// same settings, and load on all three. Every scenario enrolment of every tenant becomes overdue at one instant; in the
/// middle of that burst, with work left in both shards, the node elected for one shard's transitions (its advisory lock,
/// traced to the process through its connection) is killed with SIGKILL. Judged from each shard's store: every
/// transition exactly once, every acknowledged completion stored in its tenant's shard, every webhook delivered, the
/// summaries equal to the enrolments' states, no tenant's rows in a shard it is not placed in, and how long the dead
/// node's shard work took to move. Then, where the build has it, `tenants move` under load.
/// </summary>
public sealed class ScaleOutScenario : IScenario
{
    private const string FirstShard = "default";
    private const string SecondShard = "reliability2";
    private const int TenantsPerShard = 2;
    // 3,000 transitions per shard: three rounds of the elected node (Transitions:BatchSize 500 × MaxParallelBatches 2), so
    // a kill after the first leaves work in both shards; a few seconds' work on 2 cores shared by three nodes and two clusters.
    private const int UsersPerTenant = 1500;
    private const int CompletersPerTenant = 60;
    // TimeDrivenTransitions.LockKey: the advisory lock that elects, in each shard database, the node applying its transitions.
    private const long TransitionLockKey = 0x456E726F6C54696D;
    private static readonly TimeSpan DueAfterSetUp = TimeSpan.FromSeconds(8);
    private static readonly string[] WebhookEventTypes = ["enrolment.overdue", "enrolment.completed"];

    // Loopback receiver and short pauses, as in the webhooks scenario; the same on every node.
    private static readonly Dictionary<string, string> Settings = new()
    {
        ["Webhooks__AllowPrivateTargets"] = "true",
        ["Webhooks__FirstRetryDelay"] = "00:00:00.500",
        ["Webhooks__MaxRetryDelay"] = "00:00:04",
        ["Webhooks__Timeout"] = "00:00:05",
        ["Webhooks__PollInterval"] = "00:00:00.200",
    };

    public string Name => "scale-out";

    public string Promise => "Scale-out: tenants on two PostgreSQL servers and three nodes; a node killed with kill -9 in the middle of a due burst on both shards: " +
                             "every time-driven transition exactly once, every acknowledged write in its tenant's shard and no other, webhooks delivered, " +
                             "summaries converge, and the dead node's shard work moves to another node.";

    private sealed record Shard(string Name, string ConnectionString);

    private sealed class Node(string name, IServiceControl control, HttpClient http)
    {
        public string Name => name;
        public IServiceControl Control => control;
        public HttpClient Http => http;
        public volatile bool Killed;
    }

    private sealed class ScaleTenant(Shard shard, TenantCredentials credentials, int index, string runId)
    {
        public Shard Shard => shard;
        public TenantCredentials Credentials => credentials;
        public string Id => credentials.TenantId;
        public string Label => $"t{index}@{shard.Name}";
        public bool Subscribed => index % TenantsPerShard == 0; // one webhook receiver subscription per shard
        public string Audience { get; } = $"scale-{runId}-{index}";
        public string Course { get; } = $"scale-course-{runId}-{index}";
        public string[] Users { get; } = Enumerable.Range(0, UsersPerTenant).Select(u => $"scale-{runId}-{index}-u{u:0000}").ToArray();
        public Guid AssignmentId { get; set; }
        public string? WebhookId { get; set; }
        public string? WebhookSecret { get; set; }
    }

    private sealed record Completion(ScaleTenant Tenant, string UserId, string CompletionId);

    /// <summary>
    /// One look at a shard: the client port of the connection holding its transitions lock (null: none holds it), the
    /// scenario tenants' Overdue events so far, and their enrolments still due.
    /// </summary>
    private sealed record ShardState(int? HolderPort, long OverdueEvents, long StillDue);

    public async Task<ScenarioResult> Run(ScenarioContext context, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        if (context.Service is null || context.NewNode is null || context.StartCommand is null || context.BaseAddress is null)
            return new ScenarioResult(Name, Promise, false, [], ["Needs the service as separate processes (run it with ./build/reliability.sh)."], clock.Elapsed);
        if (context.SecondShardConnectionString is null)
            return new ScenarioResult(Name, Promise, false, [], ["Needs a second PostgreSQL cluster for the second shard (./build/reliability.sh makes one on port 5435 when scale-out runs)."], clock.Elapsed);

        var findings = new List<string>();
        var figures = new List<Figure>();
        var random = new Random(context.Seed);
        var runId = Guid.NewGuid().ToString("N")[..6];
        var shards = new[] { new Shard(FirstShard, context.ConnectionString), new Shard(SecondShard, context.SecondShardConnectionString) };
        var extraNodes = new List<IServiceNode>();
        using var receiver = new WebhookReceiver(new Random(context.Seed + 1), failHalf: false);
        var nodes = new List<Node>();
        try
        {
            // Three nodes, the same settings, each on its own port: the harness's own node restarted with them, and two more.
            // Meanwhile the first shard's tenants are created (it is in the pool already).
            var second = context.NewNode("node2");
            var third = context.NewNode("node3");
            extraNodes.AddRange([second, third]);
            var placements = shards.SelectMany((s, n) => Enumerable.Range(0, TenantsPerShard).Select(i => (Shard: s, Index: n * TenantsPerShard + i))).ToList();
            var firstShardTenants = Task.WhenAll(placements.Where(p => p.Shard == shards[0]).Select(p => AddTenant(context, p.Shard, p.Index, runId, ct)));
            await Task.WhenAll(context.Service.StartWith(Settings, ct), second.StartWith(Settings, ct), third.StartWith(Settings, ct));
            var readiness = await Task.WhenAll(new[] { context.Service, second, third }.Select(n => n.WaitUntilReady(TimeSpan.FromMinutes(3), ct)));
            nodes.Add(new Node("node1", context.Service, NodeClient(context.BaseAddress)));
            nodes.Add(new Node(second.Name, second, NodeClient(second.BaseAddress)));
            nodes.Add(new Node(third.Name, third, NodeClient(third.BaseAddress)));
            context.Log($"three nodes ready after {string.Join(", ", readiness.Select(r => $"{r.TotalSeconds:0.0} s"))}");

            // The second server joins the pool as an operator adds it, while the nodes run: they pick it up by themselves.
            var added = await Cli(context, ["shards", "add", SecondShard, context.SecondShardConnectionString], TimeSpan.FromMinutes(2), ct);
            if (added.ExitCode != 0) throw new InvalidOperationException($"`shards add {SecondShard}` failed ({added.ExitCode}): {Tail(added.StdErr)}");
            var secondShardTenants = await Task.WhenAll(placements.Where(p => p.Shard == shards[1]).Select(p => AddTenant(context, p.Shard, p.Index, runId, ct)));
            var tenants = (await firstShardTenants).Concat(secondShardTenants).ToList();
            context.Log($"shard {SecondShard} added; tenants {string.Join(", ", tenants.Select(t => $"{t.Id} ({t.Shard.Name})"))}");
            var pickedUp = await ServedEverywhere(nodes, tenants, TimeSpan.FromSeconds(60), ct);
            context.Log($"every running node serves every tenant {pickedUp.TotalSeconds:0.0} s after the last `tenants add`");

            // Set-up, spread over the nodes: content, a webhook subscription per shard, the audiences; then the assignments,
            // all due at one instant a few seconds ahead.
            receiver.Start();
            await Task.WhenAll(tenants.Select(async (t, i) =>
            {
                var http = nodes[i % nodes.Count].Http;
                if (t.Subscribed)
                {
                    var hook = (await http.Post("/webhooks", t.Credentials.All, new { url = receiver.Url, eventTypes = WebhookEventTypes }, ct)).Expect(201, $"subscribe the receiver for {t.Label}").Json;
                    (t.WebhookId, t.WebhookSecret) = (hook["id"]!.GetValue<string>(), hook["secret"]!.GetValue<string>());
                }
                await http.SetMembers(t.Credentials.All, t.Audience, t.Users, ct);
            }));
            var setUp = Stopwatch.StartNew();
            var due = DateTimeOffset.UtcNow + DueAfterSetUp;
            var dueText = due.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
            await Task.WhenAll(tenants.Select(async (t, i) =>
                t.AssignmentId = await nodes[(i + 1) % nodes.Count].Http.CreateAssignment(t.Credentials.All, new { audienceId = t.Audience, primaryContentId = t.Course, dueDate = dueText }, ct)));
            var margin = due - DateTimeOffset.UtcNow;
            context.Log($"{tenants.Count} assignments of {UsersPerTenant} enrolments each enrolled in {setUp.Elapsed.TotalSeconds:0.0} s; all due at {dueText} ({margin.TotalSeconds:0.0} s ahead)");
            if (margin < TimeSpan.FromSeconds(1))
                findings.Add($"the enrolments were not all in place before their due instant (set-up ended {-margin.TotalSeconds:0.0} s after it): the burst was not one instant");

            // Load on all three nodes from a few seconds before the due instant: completions of some users, and reads.
            var completions = new CompletionQueue(tenants
                .SelectMany(t => t.Users.Take(CompletersPerTenant).Select(u => new Completion(t, u, $"{u}-c1")))
                .OrderBy(_ => random.Next()));
            var attempts = new ConcurrentBag<(Completion Completion, Node Node, Outcome Outcome)>();
            var reads = new ConcurrentBag<(Node Node, string Kind, Outcome Outcome, bool Empty)>();
            using var stopLoad = new CancellationTokenSource();
            if (due - TimeSpan.FromSeconds(3) - DateTimeOffset.UtcNow is { TotalMilliseconds: > 0 } wait) await Task.Delay(wait, ct);
            var workers = nodes.Select(n => Task.Run(() => Complete(n, completions, attempts, stopLoad.Token), ct))
                .Concat(nodes.Select((n, i) => Task.Run(() => Read(n, tenants, new Random(context.Seed + 10 + i), reads, stopLoad.Token), ct)))
                .ToList();

            // The burst: wait until both shards have applied some transitions and still have some due, then kill the node
            // elected in the shard with the most left.
            var tenantsOf = shards.ToDictionary(s => s.Name, s => tenants.Where(t => t.Shard == s).Select(t => t.Id).ToArray());
            var totals = shards.ToDictionary(s => s.Name, _ => TenantsPerShard * UsersPerTenant);
            if (due - DateTimeOffset.UtcNow is { TotalMilliseconds: > 0 } untilDue) await Task.Delay(untilDue, ct);
            var burst = Stopwatch.StartNew();
            Node? victim = null;
            Shard? victimShard = null;
            var states = new Dictionary<string, ShardState>();
            var burstEnd = new Dictionary<string, TimeSpan>();
            while (burst.Elapsed < TimeSpan.FromSeconds(40))
            {
                foreach (var s in shards) states[s.Name] = await Look(s, tenantsOf[s.Name], ct);
                foreach (var s in shards) if (states[s.Name].StillDue == 0) burstEnd.TryAdd(s.Name, burst.Elapsed);
                // Both shards' bursts under way: each has applied some and still has a fifth or more due; or, should one
                // shard's first batch take long (it is redone one by one after a lost race), each is held by a node
                // working on it and has some left, 2 s in.
                var applying = shards.All(s => states[s.Name].OverdueEvents > 0 && states[s.Name].StillDue >= totals[s.Name] / 5);
                var working = burst.Elapsed > TimeSpan.FromSeconds(2) && shards.All(s => states[s.Name] is { HolderPort: not null, StillDue: > 0 });
                var candidate = shards.Where(s => states[s.Name] is { HolderPort: not null, StillDue: > 0 })
                    .OrderByDescending(s => states[s.Name].StillDue).FirstOrDefault();
                if ((applying || working) && candidate is not null && NodeHolding(nodes, candidate, states[candidate.Name]) is { } holder)
                {
                    (victim, victimShard) = (holder, candidate);
                    break;
                }
                if (burstEnd.Count == shards.Length) break;
                await Task.Delay(50, ct);
            }

            var killedAfter = burst.Elapsed;
            // Decided on the look before the kill; replaced below by the look just after it (batches commit in between).
            var beforeKill = shards.ToDictionary(s => s.Name, s => states.GetValueOrDefault(s.Name));
            var atKill = beforeKill;
            var takeover = new Takeover();
            DateTimeOffset? killedAtUtc = null;
            if (victim is null || victimShard is null)
            {
                findings.Add("kill: no node could be found holding a shard's transitions in the middle of the burst (it ended, or the lock holder was not traced to a node): nothing was killed, so the takeover was not tested");
            }
            else
            {
                await victim.Control.KillHard();
                victim.Killed = true;
                killedAtUtc = DateTimeOffset.UtcNow;
                var killedAt = Stopwatch.StartNew();
                // What the dead node left: read once it is gone, so nothing it committed is counted as another node's.
                atKill = new Dictionary<string, ShardState?>();
                foreach (var s in shards) atKill[s.Name] = await Look(s, tenantsOf[s.Name], ct);
                context.Log($"killed {victim.Name} {killedAfter.TotalSeconds:0.0} s into the burst; it held shard {victimShard.Name}'s transitions " +
                            $"({string.Join(", ", shards.Select(s => $"{s.Name}: {atKill[s.Name]!.OverdueEvents} overdue, {atKill[s.Name]!.StillDue} still due"))} just after)");
                var baseline = atKill[victimShard.Name]!.OverdueEvents;
                takeover.Victim = victim.Name;
                takeover.Shard = victimShard.Name;
                takeover.LeftAtKill = atKill[victimShard.Name]!.StillDue;
                while (killedAt.Elapsed < TimeSpan.FromSeconds(90))
                {
                    foreach (var s in shards) states[s.Name] = await Look(s, tenantsOf[s.Name], ct);
                    foreach (var s in shards) if (states[s.Name].StillDue == 0) burstEnd.TryAdd(s.Name, burst.Elapsed);
                    var now = states[victimShard.Name];
                    if (takeover.LockMoved is null && NodeHolding(nodes, victimShard, now) is { } next)
                        (takeover.LockMoved, takeover.NewHolder) = (killedAt.Elapsed, next.Name);
                    if (takeover.FirstApplied is null && now.OverdueEvents > baseline) takeover.FirstApplied = killedAt.Elapsed;
                    if (now.StillDue == 0) { takeover.AllApplied = killedAt.Elapsed; }
                    if (burstEnd.Count == shards.Length) break;
                    await Task.Delay(50, ct);
                }
                context.Log($"shard {victimShard.Name} after the kill: lock moved to {takeover.NewHolder ?? "no node"} after {Tally.Seconds(takeover.LockMoved)}, " +
                            $"first transition {Tally.Seconds(takeover.FirstApplied)}, all {Tally.Seconds(takeover.AllApplied)}");
            }
            // The load goes on until every completion was answered (a killed node's are sent again to another) or a minute passed.
            var loadEnd = Stopwatch.StartNew();
            while (!completions.Done && loadEnd.Elapsed < TimeSpan.FromMinutes(1)) await Task.Delay(100, ct);
            await stopLoad.CancelAsync();
            await Task.WhenAll(workers);

            // Judge each shard's store.
            var stores = new Dictionary<string, Dictionary<Guid, List<IEnrolmentEvent>>>();
            foreach (var t in tenants)
                stores[t.Id] = (await EventStore.EnrolmentStreams(t.Shard.ConnectionString, t.Id, null, ct))
                    .Where(s => s.Value.FirstOrDefault() is EnrolmentAssigned a && a.AssignmentId == t.AssignmentId).ToDictionary();
            var streams = tenants.SelectMany(t => stores[t.Id].Select(s => (Tenant: t, Id: s.Key, Events: s.Value))).ToList();
            var verdicts = streams.Select(s => (s.Tenant, Verdict: Lifecycle.Check(s.Id, s.Events), Overdue: s.Events.Count(e => e is EnrolmentBecameOverdue))).ToList();
            var twice = verdicts.Where(v => v.Overdue > 1).Select(v => $"{v.Tenant.Label} {v.Verdict.StreamId}: {v.Overdue} overdue events").ToList();
            var notTransitioned = verdicts.Where(v => v.Verdict.FinalStatus == EnrolmentStatus.Open).Select(v => $"{v.Tenant.Label} {v.Verdict.StreamId}").ToList();
            var impossible = verdicts.SelectMany(v => v.Verdict.ImpossibleTransitions).ToList();
            var transitioned = verdicts.Count(v => v.Overdue == 1);
            var completedFirst = verdicts.Count(v => v.Overdue == 0 && v.Verdict.FinalStatus == EnrolmentStatus.Complete);

            var all = attempts.ToList();
            var acknowledged = all.Where(a => a.Outcome.Ok).Select(a => a.Completion).DistinctBy(c => c.CompletionId).ToList();
            var stored = streams.SelectMany(s => s.Events.OfType<EnrolmentCompleted>().Select(e => (s.Tenant.Id, e.CompletionId))).ToHashSet();
            var missing = acknowledged.Where(c => !stored.Contains((c.Tenant.Id, c.CompletionId))).Select(c => $"{c.Tenant.Label} {c.CompletionId}").ToList();
            var refused = all.Where(a => a.Outcome.Answered && !a.Outcome.Ok).ToList();
            var liveReads = reads.Where(r => r.Outcome.Answered).ToList();
            var serverErrors = refused.Select(a => a.Outcome).Concat(liveReads.Select(r => r.Outcome)).Count(o => o.Status >= 500);
            var badReads = liveReads.Where(r => !r.Outcome.Ok || r.Empty).Select(r => $"{r.Node.Name} {r.Kind}: {(r.Empty ? "empty " : "")}{r.Outcome}").ToList();
            var otherRefusals = refused.Where(a => !IsLostRace(a.Outcome) && a.Outcome.Status is not (429 or 503)).Select(a => $"{a.Node.Name}: {a.Outcome}").ToList();
            var requestsPerNode = nodes.Select(n => $"{n.Name} {Tally.N(all.Count(a => a.Node == n) + reads.Count(r => r.Node == n))}");

            if (twice.Count > 0) findings.Add($"twice: enrolments with more than one overdue event: {Tally.Sample(twice)}");
            if (notTransitioned.Count > 0) findings.Add($"not transitioned: enrolments still open after their due instant: {Tally.Sample(notTransitioned)}");
            if (impossible.Count > 0) findings.Add($"impossible transitions: {Tally.Sample(impossible)}");
            if (streams.Count != tenants.Count * UsersPerTenant) findings.Add($"enrolments: {streams.Count} in the shards' stores, {tenants.Count * UsersPerTenant} expected");
            if (missing.Count > 0) findings.Add($"missing: acknowledged completions with no completion event in their tenant's shard: {Tally.Sample(missing)}");
            if (badReads.Count > 0) findings.Add($"reads answered other than 200, or an empty page: {Tally.Sample(badReads, 3)}");
            if (otherRefusals.Count > 0) findings.Add($"completions refused other than by a lost race: {Tally.Sample(otherRefusals, 3)}");
            if (serverErrors > 0)
                findings.Add($"answers ≥ 500 from nodes that were running: {Tally.Sample(refused.Select(a => a.Outcome).Concat(liveReads.Select(r => r.Outcome)).Where(o => o.Status >= 500).Select(o => o.ToString()).ToList(), 3)}");

            // Webhooks and summaries converge in the background: both waited for at once.
            var webhookSecrets = tenants.Where(t => t.WebhookId is not null).ToDictionary(t => t.WebhookId!, t => t.WebhookSecret!);
            var expectedDeliveries = streams.Where(s => s.Tenant.Subscribed)
                .SelectMany(s => s.Events.Select((e, i) => (e, Key: (s.Id, (long)i + 1))).Where(x => x.e is EnrolmentBecameOverdue or EnrolmentCompleted).Select(x => x.Key))
                .ToHashSet();
            var expectedSummaries = tenants.ToDictionary(t => t.Id, t => Counts(verdicts.Where(v => v.Tenant == t).Select(v => v.Verdict.FinalStatus)));
            var converging = Stopwatch.StartNew();
            var live = nodes.Where(n => !n.Killed).ToList();
            // A dead node's share (its inbox, its projection agents) moves once Wolverine ejects it, about 80 s after the kill.
            // Meanwhile (they wait on nothing of it): the hash chain of every tenant in every shard after the kill, and
            // whether this build has `tenants move`.
            var auditDone = Cli(context, ["audit", "verify"], TimeSpan.FromMinutes(2), ct);
            var moveAvailable = MoveAvailable(context, ct);
            var webhooksDone = WaitForDeliveries(receiver, expectedDeliveries, TimeSpan.FromSeconds(120), ct);
            var summariesDone = WaitForSummaries(live, tenants, expectedSummaries, TimeSpan.FromSeconds(120), ct);
            var (webhooksAfter, (summaryMismatches, summariesAfter)) = (await webhooksDone, await summariesDone);

            var accepted = receiver.Accepted.ToList();
            var acceptedKeys = accepted.Select(a => (a.EnrolmentId, a.StreamVersion)).ToHashSet();
            var undelivered = expectedDeliveries.Where(k => !acceptedKeys.Contains(k)).Select(k => $"{k.Item1}@{k.Item2}").ToList();
            var unexpected = acceptedKeys.Where(k => !expectedDeliveries.Contains(k)).Select(k => $"{k.EnrolmentId}@{k.StreamVersion}").ToList();
            var badSignatures = accepted.Count(r => !webhookSecrets.TryGetValue(r.WebhookId, out var secret) || !r.SignatureMatches(secret));
            var lastDelivery = accepted.Where(a => expectedDeliveries.Contains((a.EnrolmentId, a.StreamVersion)))
                .GroupBy(a => (a.EnrolmentId, a.StreamVersion)).Select(g => g.Min(a => a.ReceivedAt)).DefaultIfEmpty().Max();
            var ejected = killedAtUtc is { } k ? Ejection(nodes.Where(n => !n.Killed), context, extraNodes, k) : null;
            // Pages of the summaries' daemon refused because another node's daemon applied them first: wasted work, and
            // Marten stops the refused agent (0 where Wolverine distributes the agents, Projections:DaemonMode=Distributed).
            var daemonConflicts = LogLines(nodes.Select(n => n.Name), context, extraNodes, "ProgressionProgressOutOfOrderException").Count()
                                  + LogLines(nodes.Select(n => n.Name), context, extraNodes, "pk_mt_event_progression").Count();
            if (undelivered.Count > 0) findings.Add($"webhooks: {undelivered.Count} committed changes never delivered: {Tally.Sample(undelivered)}");
            if (unexpected.Count > 0) findings.Add($"webhooks: deliveries of changes not in the store: {Tally.Sample(unexpected)}");
            if (badSignatures > 0) findings.Add($"webhooks: {badSignatures} deliveries whose signature does not verify");
            if (summaryMismatches.Count > 0) findings.Add($"summaries: not equal to the enrolments' states after {converging.Elapsed.TotalSeconds:0} s: {Tally.Sample(summaryMismatches)}");

            // Rows: every tenant's in the shard it is placed in, none elsewhere.
            var (misplaced, perShard) = await RowsByShard(context.ConnectionString, shards, tenants, ct);
            if (misplaced.Count > 0) findings.Add($"rows in a shard their tenant is not placed in: {Tally.Sample(misplaced)}");

            var audit = await auditDone;
            if (audit.ExitCode != 0) findings.Add($"audit verify failed ({audit.ExitCode}): {Tail(audit.StdOut + "\n" + audit.StdErr)}");

            // The later step of issue #31: `tenants move` under load, where this build has the command.
            var move = await moveAvailable
                ? await MoveUnderLoad(context, shards, tenants, live, stores, ct)
                : new StepResult([new Figure("tenants move under load", "not available (`help tenants` shows no --to flag in this build)")],
                    ["tenants move: not available in this build; the move-under-load step was skipped"]);
            findings.AddRange(move.Findings);

            findings.Add($"burst: {tenants.Count * UsersPerTenant:N0} enrolments due at one instant on {shards.Length} shards ({TenantsPerShard} tenants each); " +
                         $"kill {killedAfter.TotalSeconds:0.0} s in; shard bursts over after {string.Join(", ", shards.Select(s => $"{s.Name} {Tally.Seconds(burstEnd.TryGetValue(s.Name, out var e) ? e : null)}"))}");
            findings.Add($"rows per shard (mt_events / mt_streams / mt_doc_enrolment) by tenant: {perShard}");

            // In the middle of the burst on both shards: both had begun and had work left when the kill was decided, and the
            // dead node's shard still had some once it was gone (for another node to take over).
            var killedMidBurst = victim is not null && shards.All(s => beforeKill[s.Name] is { StillDue: > 0 } b && (b.OverdueEvents > 0 || b.HolderPort is not null))
                                 && atKill[victimShard!.Name] is { StillDue: > 0 };
            figures.AddRange(
            [
                new("running nodes serve the tenants of a shard added meanwhile, after", Tally.Seconds(pickedUp), "< 60 s", pickedUp < TimeSpan.FromSeconds(60)),
                new("nodes / shards (servers)", $"3 / {shards.Length} ({string.Join(", ", shards.Select(s => $"{s.Name} on port {new NpgsqlConnectionStringBuilder(s.ConnectionString).Port}"))})"),
                new("enrolments due at one instant (both shards)", $"{Tally.N(tenants.Count * UsersPerTenant)} ({string.Join(", ", shards.Select(s => $"{s.Name} {Tally.N(totals[s.Name])}"))})"),
                new("kill -9 in the middle of the burst on both shards", victim is null ? "no kill"
                    : $"{victim.Name}, holding {victimShard!.Name}'s transitions, {killedAfter.TotalSeconds:0.0} s in; just after it: {string.Join(", ", shards.Select(s => $"{s.Name} {Tally.N((int)atKill[s.Name]!.OverdueEvents)} applied, {Tally.N((int)atKill[s.Name]!.StillDue)} still due"))}",
                    "yes", killedMidBurst),
                new("enrolments checked (streams in the shards' stores)", Tally.N(streams.Count), $"= {Tally.N(tenants.Count * UsersPerTenant)}", streams.Count == tenants.Count * UsersPerTenant),
                new("transitioned once / completed before their transition", $"{Tally.N(transitioned)} / {Tally.N(completedFirst)}"),
                new("enrolments with two or more overdue events", Tally.N(twice.Count), "0", twice.Count == 0),
                new("due enrolments never transitioned (still open)", Tally.N(notTransitioned.Count), "0", notTransitioned.Count == 0),
                new("impossible transitions", Tally.N(impossible.Count), "0", impossible.Count == 0),
                new("requests per node (completions and reads)", string.Join(", ", requestsPerNode)),
                new("completions acknowledged (200) / sent (attempts by answer)", $"{Tally.N(acknowledged.Count)} / {Tally.N(all.Select(a => a.Completion.CompletionId).Distinct().Count())} ({Tally.ByStatus(all.Select(a => a.Outcome))})",
                    "all", acknowledged.Count == all.Select(a => a.Completion.CompletionId).Distinct().Count()),
                new("acknowledged completions missing from their shard", Tally.N(missing.Count), "0", missing.Count == 0 && acknowledged.Count > 0),
                new("reads answered (assignment and user summaries, enrolment and change-feed pages)", Tally.ByStatus(reads.Select(r => r.Outcome))),
                new("reads of running nodes answered other than 200, or an empty page", Tally.N(badReads.Count), "0", badReads.Count == 0),
                new("answers ≥ 500 from running nodes", Tally.N(serverErrors), "0", serverErrors == 0),
                new("webhook deliveries expected / accepted (distinct)", $"{Tally.N(expectedDeliveries.Count)} / {Tally.N(acceptedKeys.Count)}"),
                new("webhook deliveries missing", Tally.N(undelivered.Count), "0", undelivered.Count == 0 && expectedDeliveries.Count > 0),
                new("webhook deliveries that were not committed, or badly signed", Tally.N(unexpected.Count + badSignatures), "0", unexpected.Count + badSignatures == 0),
                new("assignment summaries ≠ enrolments' states", $"{Tally.N(summaryMismatches.Count)} of {tenants.Count} (equal {Tally.Seconds(summariesAfter)} after the load)", "0", summaryMismatches.Count == 0),
                new("rows in a shard their tenant is not placed in", Tally.N(misplaced.Count), "0", misplaced.Count == 0),
                new("audit verify (every shard) after the kill", audit.ExitCode == 0 ? "passes" : $"exit {audit.ExitCode}", "passes", audit.ExitCode == 0),
                new("kill → another node holds the dead node's shard lock", takeover.Victim is null ? "no kill" : $"{Tally.Seconds(takeover.LockMoved)} ({takeover.NewHolder ?? "none"})"),
                new("kill → first transition of that shard applied by another node", Tally.Seconds(takeover.FirstApplied), "reported", takeover.FirstApplied is not null),
                new("kill → all of that shard's due transitions applied", takeover.Victim is null ? "no kill" : $"{Tally.Seconds(takeover.AllApplied)} ({Tally.N((int)takeover.LeftAtKill)} were left at the kill)",
                    "reported", takeover.AllApplied is not null),
                new("summaries' daemon: pages refused because another node's daemon applied them first (errors logged)", Tally.N(daemonConflicts)),
                new("kill → Wolverine ejects the dead node (its inbox released to the others)", killedAtUtc is null ? "no kill" : Tally.Seconds(ejected)),
                new("kill → every expected webhook delivery accepted", killedAtUtc is { } at && undelivered.Count == 0 && lastDelivery > at ? Tally.Seconds(lastDelivery - at)
                    : undelivered.Count > 0 ? "never" : "before the kill"),
            ]);
            figures.AddRange(move.Figures);
            return new ScenarioResult(Name, Promise, figures.All(f => f.Met != false), figures, findings, clock.Elapsed);
        }
        finally
        {
            foreach (var n in nodes) n.Http.Dispose();
            foreach (var n in extraNodes) await n.DisposeAsync();
        }
    }

    /// <summary>`tenants add &lt;id&gt; --shard &lt;name&gt;` with an api/all secret, as an operator places a tenant.</summary>
    private static async Task<ScaleTenant> AddTenant(ScenarioContext context, Shard shard, int index, string runId, CancellationToken ct)
    {
        var id = $"eu-west-2_Scale{index}{Guid.NewGuid():N}"[..26];
        var added = await Cli(context, ["tenants", "add", id, "--shard", shard.Name, "--scopes", "api/all"], TimeSpan.FromMinutes(2), ct);
        if (added.ExitCode != 0) throw new InvalidOperationException($"`tenants add {id} --shard {shard.Name}` failed ({added.ExitCode}): {Tail(added.StdErr)}");
        var secret = added.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Last();
        return new ScaleTenant(shard, new TenantCredentials(id, secret, secret, secret), index, runId);
    }

    private sealed class Takeover
    {
        public string? Victim, Shard, NewHolder;
        public long LeftAtKill;
        public TimeSpan? LockMoved, FirstApplied, AllApplied;
    }

    /// <summary>
    /// Waits until every node accepts a write of every tenant (the tenant's course, PUT: the same each time): nodes that
    /// were running when the shard and its tenants were added learn of them from the master within Shards:RefreshInterval.
    /// </summary>
    private static async Task<TimeSpan> ServedEverywhere(IReadOnlyList<Node> nodes, IReadOnlyList<ScaleTenant> tenants, TimeSpan timeout, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(nodes.SelectMany(n => tenants.Select(async t =>
        {
            while (true)
            {
                var answer = await n.Http.Put($"/content/{t.Course}", t.Credentials.All, new { title = $"Scale-out course {t.Label}" }, ct);
                if (answer.Ok) return;
                if (clock.Elapsed > timeout) throw new TimeoutException($"{n.Name} still refuses tenant {t.Label} {timeout.TotalSeconds:0} s after it was added: {answer}");
                await Task.Delay(250, ct);
            }
        })));
        return clock.Elapsed;
    }

    private static HttpClient NodeClient(Uri address) =>
        new(new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30) }) { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };

    /// <summary>
    /// Completions still to be acknowledged, shared by the nodes' workers. One taken is in flight until its answer says
    /// whether it is done or goes back (sent again by whichever worker comes next), so the load is over only when none
    /// is queued and none in flight: a worker that found the queue empty must not stop while a dying node may hand one back.
    /// </summary>
    private sealed class CompletionQueue(IEnumerable<Completion> items)
    {
        private readonly ConcurrentQueue<Completion> _queue = new(items);
        private readonly ConcurrentDictionary<string, bool> _sent = new();
        private int _inFlight;
        private volatile bool _closed;

        public bool Done => Volatile.Read(ref _inFlight) == 0 && _queue.IsEmpty;

        /// <summary>No new completion from now on; those sent already are still sent again until answered for good.</summary>
        public void Close() => _closed = true;

        public bool TryTake(out Completion completion)
        {
            Interlocked.Increment(ref _inFlight); // before the dequeue: Done never sees it neither queued nor in flight
            while (_queue.TryDequeue(out completion!))
            {
                if (_closed && !_sent.ContainsKey(completion.CompletionId)) continue;
                _sent[completion.CompletionId] = true;
                return true;
            }
            Interlocked.Decrement(ref _inFlight);
            return false;
        }

        public void Answered(Completion completion, bool sendAgain)
        {
            if (sendAgain) _queue.Enqueue(completion);
            Interlocked.Decrement(ref _inFlight);
        }
    }

    /// <summary>One node's share of the completions, one at a time and paced, until the load stops or the node is killed.</summary>
    private static async Task Complete(Node node, CompletionQueue queue, ConcurrentBag<(Completion, Node, Outcome)> attempts, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested && !node.Killed)
        {
            if (!queue.TryTake(out var c))
            {
                try { await Task.Delay(50, stop); } catch (OperationCanceledException) { break; }
                continue;
            }
            Outcome outcome;
            try
            {
                outcome = await node.Http.Post("/completions", c.Tenant.Credentials.All,
                    new { completionId = c.CompletionId, userId = c.UserId, contentId = c.Tenant.Course, completedAt = Api.Now() }, stop);
            }
            catch (OperationCanceledException) { queue.Answered(c, sendAgain: true); break; }
            attempts.Add((c, node, outcome));
            // No answer (the node died under it), "try again", or a race lost to a transition or another node (409
            // concurrency-conflict, nothing stored): the same completion (idempotent on its id) goes back, as a client would send it again.
            queue.Answered(c, sendAgain: !outcome.Answered || outcome.Status is 429 or 503 || IsLostRace(outcome));
            if (!outcome.Answered) break;
            try { await Task.Delay(outcome.RetryAfter is { } r && r > TimeSpan.Zero ? r : TimeSpan.FromMilliseconds(60), stop); } catch (OperationCanceledException) { break; }
        }
    }

    private static bool IsLostRace(Outcome outcome) =>
        outcome.Status == 409 && outcome.Body.Contains("\"concurrency-conflict\"", StringComparison.Ordinal);

    /// <summary>
    /// Reads on one node until the load stops or the node is killed, in turn: an assignment's summary, a page of its
    /// enrolments, a page of the change feed, a user's summary. The pages have something to show for every tenant once
    /// set up, so an empty one means the read looked in a shard the tenant is not in. (A summary may be empty for a
    /// while: it is eventually consistent, and its asOf says so.)
    /// </summary>
    private static async Task Read(Node node, IReadOnlyList<ScaleTenant> tenants, Random random, ConcurrentBag<(Node, string, Outcome, bool)> reads, CancellationToken stop)
    {
        for (var i = 0; !stop.IsCancellationRequested && !node.Killed; i++)
        {
            var t = tenants[random.Next(tenants.Count)];
            var (kind, url) = (i % 4) switch
            {
                0 => ("assignment summary", $"/assignments/{t.AssignmentId}/summary"),
                1 => ("enrolments page", $"/assignments/{t.AssignmentId}/enrolments?limit=50"),
                2 => ("change feed page", "/changes?limit=50"),
                _ => ("user summary", $"/users/{t.Users[random.Next(t.Users.Length)]}/summary"),
            };
            try
            {
                var outcome = await node.Http.Get(url, t.Credentials.All, stop);
                if (!node.Killed) reads.Add((node, kind, outcome, outcome.Ok && kind.EndsWith("page", StringComparison.Ordinal) && IsEmpty(outcome)));
                await Task.Delay(100, stop);
            }
            catch (OperationCanceledException) { break; }
        }

        static bool IsEmpty(Outcome outcome) => outcome.Json["items"]?.AsArray().Count is null or 0;
    }

    /// <summary>A shard at this instant: who holds its transitions lock, the scenario tenants' Overdue events, and their enrolments still due.</summary>
    private static async Task<ShardState> Look(Shard shard, string[] tenantIds, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(shard.ConnectionString);
        await connection.OpenAsync(ct);
        await using var command = new NpgsqlCommand("""
            select (select a.client_port from pg_locks l join pg_stat_activity a on a.pid = l.pid
                    where l.locktype = 'advisory' and l.granted and l.classid::bigint = $1 and l.objid::bigint = $2 and l.objsubid = 1 limit 1),
                   (select count(*) from enrolment.mt_events where tenant_id = any($3) and mt_dotnet_type like 'Enrolment.Domain.EnrolmentBecameOverdue,%'),
                   (select count(*) from enrolment.mt_doc_enrolment where tenant_id = any($3) and next_transition_at_utc <= now())
            """, connection);
        command.Parameters.AddWithValue((long)(TransitionLockKey >>> 32));
        command.Parameters.AddWithValue(TransitionLockKey & 0xFFFFFFFFL);
        command.Parameters.AddWithValue(tenantIds);
        await using var reader = await command.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        return new ShardState(reader.IsDBNull(0) ? null : reader.GetInt32(0), reader.GetInt64(1), reader.GetInt64(2));
    }

    /// <summary>The running node whose connection holds the shard's transitions lock, if any.</summary>
    private static Node? NodeHolding(IEnumerable<Node> nodes, Shard shard, ShardState state)
    {
        if (state.HolderPort is not { } port) return null;
        var running = nodes.Where(n => !n.Killed && n.Control.ProcessId is not null).ToList();
        var pid = ProcessWithClientPort(port, new NpgsqlConnectionStringBuilder(shard.ConnectionString).Port, running.Select(n => n.Control.ProcessId!.Value));
        return running.FirstOrDefault(n => n.Control.ProcessId == pid);
    }

    /// <summary>
    /// Which of these processes owns the TCP connection from local port <paramref name="clientPort"/> to the PostgreSQL
    /// port: the socket's inode from /proc/net/tcp, then the process with a descriptor on it. Null when none does.
    /// </summary>
    private static int? ProcessWithClientPort(int clientPort, int serverPort, IEnumerable<int> pids)
    {
        long? inode = null;
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            if (!File.Exists(table)) continue;
            foreach (var line in File.ReadLines(table).Skip(1))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length < 10) continue;
                if (Port(f[1]) == clientPort && Port(f[2]) == serverPort) { inode = long.Parse(f[9], CultureInfo.InvariantCulture); break; }
            }
            if (inode is not null) break;
        }
        if (inode is null or 0) return null;
        var target = $"socket:[{inode}]";
        foreach (var pid in pids)
        {
            try
            {
                if (Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd").Any(fd => new FileInfo(fd).LinkTarget == target)) return pid;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return null;

        static int Port(string address) => int.Parse(address[(address.LastIndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }

    /// <summary>The JSON log lines of this scenario's nodes (their latest start each), those containing <paramref name="text"/>.</summary>
    private static IEnumerable<System.Text.Json.JsonElement> LogLines(IEnumerable<string> nodeNames, ScenarioContext context, IReadOnlyList<IServiceNode> extraNodes, string text)
    {
        var names = nodeNames.ToHashSet();
        var files = (names.Contains("node1") ? context.ServiceLogFiles.TakeLast(1) : [])
            .Concat(extraNodes.Where(n => names.Contains(n.Name)).SelectMany(n => n.LogFiles.TakeLast(1)));
        foreach (var file in files)
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            while (reader.ReadLine() is { } line)
                if (line.StartsWith('{') && line.Contains(text, StringComparison.Ordinal))
                    yield return System.Text.Json.JsonDocument.Parse(line).RootElement.Clone();
        }
    }

    /// <summary>
    /// How long after the kill a surviving node logged Wolverine's "Ejected stale node" (the dead node's inbox and outbox
    /// released for recovery); null if none did.
    /// </summary>
    private static TimeSpan? Ejection(IEnumerable<Node> survivors, ScenarioContext context, IReadOnlyList<IServiceNode> extraNodes, DateTimeOffset killedAt) =>
        LogLines(survivors.Select(n => n.Name), context, extraNodes, "Ejected stale node")
            .Select(l => DateTimeOffset.Parse(l.GetProperty("Timestamp").GetString()!.Trim(), CultureInfo.InvariantCulture))
            .Where(at => at > killedAt).Select(at => (TimeSpan?)(at - killedAt)).Min();

    private static Dictionary<string, int> Counts(IEnumerable<EnrolmentStatus> statuses) =>
        statuses.GroupBy(EnrolmentRules.Lower).ToDictionary(g => g.Key, g => g.Count());

    /// <summary>Waits until the receiver has accepted every expected (enrolment, version); returns how long that took, null if it never did.</summary>
    private static async Task<TimeSpan?> WaitForDeliveries(WebhookReceiver receiver, HashSet<(Guid, long)> expected, TimeSpan timeout, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (expected.IsSubsetOf(receiver.Accepted.Select(a => (a.EnrolmentId, a.StreamVersion)))) return clock.Elapsed;
            if (clock.Elapsed > timeout) return null;
            await Task.Delay(500, ct);
        }
    }

    /// <summary>Polls each assignment's summary on the running nodes until it equals the enrolments' states; returns the ones that never did, and when they all did.</summary>
    private static async Task<(List<string> Mismatches, TimeSpan? After)> WaitForSummaries(IReadOnlyList<Node> live, IReadOnlyList<ScaleTenant> tenants, Dictionary<string, Dictionary<string, int>> expected,
        TimeSpan timeout, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var mismatches = new List<string>();
        for (var round = 0; ; round++)
        {
            mismatches.Clear();
            for (var i = 0; i < tenants.Count; i++)
            {
                var t = tenants[i];
                var node = live[(round + i) % live.Count];
                var answer = await node.Http.Get($"/assignments/{t.AssignmentId}/summary", t.Credentials.Read, ct);
                if (!answer.Ok) { mismatches.Add($"{t.Label}: {node.Name} answered {answer}"); continue; }
                var byStatus = answer.Json["byStatus"]!;
                var want = expected[t.Id];
                var differ = new[] { "scheduled", "open", "overdue", "complete", "archived" }
                    .Where(s => (byStatus[s]?.GetValue<int>() ?? 0) != want.GetValueOrDefault(s)).ToList();
                if (differ.Count > 0)
                    mismatches.Add($"{t.Label}: summary {string.Join(", ", differ.Select(s => $"{s} {byStatus[s]}"))}, enrolments {string.Join(", ", differ.Select(s => $"{s} {want.GetValueOrDefault(s)}"))}");
            }
            if (mismatches.Count == 0) return (mismatches, clock.Elapsed);
            if (clock.Elapsed > timeout) return (mismatches, null);
            await Task.Delay(1000, ct);
        }
    }

    /// <summary>
    /// Every table of the service's schema with a tenant_id column, in every shard, counted by tenant: a tenant's rows
    /// must be in the shard the master places it in and nowhere else (rows of no tenant, '*DEFAULT*', are the registry's).
    /// </summary>
    private static async Task<(List<string> Misplaced, string PerShard)> RowsByShard(string master, IReadOnlyList<Shard> shards, IReadOnlyList<ScaleTenant> tenants, CancellationToken ct)
    {
        var placed = new Dictionary<string, string>();
        await using (var connection = new NpgsqlConnection(master))
        {
            await connection.OpenAsync(ct);
            await using var command = new NpgsqlCommand("select tenant_id, database_id from enrolment_pool.mt_tenant_assignments", connection);
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) placed[reader.GetString(0)] = reader.GetString(1);
        }
        var misplaced = new List<string>();
        var named = new List<string>();
        foreach (var shard in shards)
        {
            await using var connection = new NpgsqlConnection(shard.ConnectionString);
            await connection.OpenAsync(ct);
            var tables = new List<string>();
            await using (var command = new NpgsqlCommand("""
                select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace join pg_attribute a on a.attrelid = c.oid
                where n.nspname = 'enrolment' and c.relkind in ('r', 'p') and not c.relispartition and a.attname = 'tenant_id' and not a.attisdropped
                and c.relname <> 'tenant_fences' -- a moved tenant's fence stays in the shard it left, on purpose (docs/scale-out.md)
                order by c.relname
                """, connection))
            await using (var reader = await command.ExecuteReaderAsync(ct))
                while (await reader.ReadAsync(ct)) tables.Add(reader.GetString(0));
            var counts = new Dictionary<(string Table, string Tenant), long>();
            foreach (var table in tables)
            {
                await using var command = new NpgsqlCommand($"select tenant_id, count(*) from enrolment.\"{table}\" group by tenant_id", connection);
                await using var reader = await command.ExecuteReaderAsync(ct);
                while (await reader.ReadAsync(ct)) counts[(table, reader.IsDBNull(0) ? "" : reader.GetString(0))] = reader.GetInt64(1);
            }
            foreach (var ((table, tenant), count) in counts)
                if (tenant is not ("*DEFAULT*" or "") && placed.GetValueOrDefault(tenant) != shard.Name)
                    misplaced.Add($"{shard.Name}.{table}: {count} rows of {tenant} (placed in {placed.GetValueOrDefault(tenant) ?? "no shard"})");
            named.Add($"{shard.Name}: " + string.Join(", ", tenants.Select(t =>
                $"{t.Label} {string.Join("/", new[] { "mt_events", "mt_streams", "mt_doc_enrolment" }.Select(x => counts.GetValueOrDefault((x, t.Id)).ToString(CultureInfo.InvariantCulture)))}")));
        }
        return (misplaced, string.Join("; ", named));
    }

    private sealed record StepResult(IReadOnlyList<Figure> Figures, IReadOnlyList<string> Findings);

    // ── Issue #31's later step: `tenants move <tenantId> --to <shard>` under load ───────────────────────────────────
    // Built on branch shard31. This build has it when `help tenants` shows a --to flag; otherwise the step reports
    // "not available" and is skipped (it neither passes nor fails the scenario).

    /// <summary>Whether this build has `tenants move &lt;tenantId&gt; --to &lt;shard&gt;`: its help shows a --to flag.</summary>
    private static async Task<bool> MoveAvailable(ScenarioContext context, CancellationToken ct)
    {
        var help = await Cli(context, ["help", "tenants"], TimeSpan.FromMinutes(1), ct);
        return Regex.IsMatch(help.StdOut + help.StdErr, @"--to\b");
    }

    /// <summary>
    /// Moves a tenant of the first shard to the second while completions of its users keep coming through the running
    /// nodes: during the switch they may answer 503 with Retry-After (sent again after it), never anything that loses a
    /// write. Afterwards every acknowledged completion is in the target shard, none of the tenant's rows remain in the
    /// source, and `audit verify` passes.
    /// </summary>
    private static async Task<StepResult> MoveUnderLoad(ScenarioContext context, IReadOnlyList<Shard> shards, IReadOnlyList<ScaleTenant> tenants, IReadOnlyList<Node> live,
        Dictionary<string, Dictionary<Guid, List<IEnrolmentEvent>>> stores, CancellationToken ct)
    {
        var findings = new List<string>();
        var (source, target) = (shards[0], shards[1]);
        var tenant = tenants.First(t => t.Shard == source);
        // Users with no completion yet (overdue now), completed one by one through every running node from before the
        // move until after it (more than the move can take: what is not sent by then is not sent).
        var completed = stores[tenant.Id].Values.Where(e => e.Any(x => x is EnrolmentCompleted)).Select(e => ((EnrolmentAssigned)e[0]).UserId).ToHashSet();
        var queue = new CompletionQueue(tenant.Users.Where(u => !completed.Contains(u)).Select(u => new Completion(tenant, u, $"{u}-move")));
        var attempts = new ConcurrentBag<(Completion Completion, Node Node, Outcome Outcome)>();
        using var stop = new CancellationTokenSource();
        var workers = live.Select(n => Task.Run(() => Complete(n, queue, attempts, stop.Token), ct)).ToList();
        await Task.Delay(TimeSpan.FromSeconds(1), ct);

        var clock = Stopwatch.StartNew();
        var moved = await Cli(context, ["tenants", "move", tenant.Id, "--to", target.Name], TimeSpan.FromMinutes(2), ct);
        var took = clock.Elapsed;
        context.Log($"tenants move {tenant.Id} --to {target.Name}: exit {moved.ExitCode} after {took.TotalSeconds:0.0} s");
        if (moved.ExitCode != 0) findings.Add($"tenants move failed ({moved.ExitCode}): {Tail(moved.StdOut + "\n" + moved.StdErr)}");
        // The writes go on a little after the switch; then only those not answered for good yet are sent again.
        await Task.Delay(TimeSpan.FromSeconds(2), ct);
        queue.Close();
        var drain = Stopwatch.StartNew();
        while (!queue.Done && drain.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(100, ct);
        await stop.CancelAsync();
        await Task.WhenAll(workers);

        var all = attempts.ToList();
        var unavailable = all.Where(a => a.Outcome.Status == 503).ToList();
        var withoutRetryAfter = unavailable.Count(a => a.Outcome.RetryAfter is null);
        // A lost race (409 concurrency-conflict) stored nothing and was sent again: not an error that loses data.
        var otherErrors = all.Where(a => a.Outcome.Answered && !a.Outcome.Ok && a.Outcome.Status != 503 && !IsLostRace(a.Outcome)).ToList();
        var unanswered = all.Select(a => a.Completion.CompletionId).Distinct().Count() - all.Where(a => a.Outcome.Ok).Select(a => a.Completion.CompletionId).Distinct().Count();
        var acknowledged = all.Where(a => a.Outcome.Ok).Select(a => a.Completion).DistinctBy(c => c.CompletionId).ToList();
        var inTarget = (await EventStore.EnrolmentStreams(target.ConnectionString, tenant.Id, null, ct)).Values
            .SelectMany(e => e.OfType<EnrolmentCompleted>()).Select(e => e.CompletionId).ToHashSet();
        var missing = acknowledged.Where(c => !inTarget.Contains(c.CompletionId)).Select(c => c.CompletionId).ToList();
        var leftInSource = await TenantRows(source.ConnectionString, tenant.Id, ct);
        var audit = await Cli(context, ["audit", "verify"], TimeSpan.FromMinutes(2), ct);

        if (withoutRetryAfter > 0) findings.Add($"tenants move: {withoutRetryAfter} answers 503 without Retry-After");
        if (otherErrors.Count > 0) findings.Add($"tenants move: writes answered neither 2xx nor 503: {Tally.Sample(otherErrors.Select(a => a.Outcome.ToString()).ToList(), 3)}");
        if (missing.Count > 0) findings.Add($"tenants move: acknowledged completions not in the target shard: {Tally.Sample(missing)}");
        if (leftInSource.Count > 0) findings.Add($"tenants move: the tenant's rows left in the source shard: {Tally.Sample(leftInSource)}");
        if (audit.ExitCode != 0) findings.Add($"tenants move: audit verify failed ({audit.ExitCode}): {Tail(audit.StdOut + "\n" + audit.StdErr)}");
        if (unanswered > 0) findings.Add($"tenants move: {unanswered} completions sent during the move were never acknowledged, even sent again");
        findings.Add($"tenants move {tenant.Label} --to {target.Name}: {took.TotalSeconds:0.0} s; writes answered {Tally.ByStatus(all.Select(a => a.Outcome))}");
        return new StepResult(
        [
            new("tenants move under load (exit code)", $"{moved.ExitCode} after {took.TotalSeconds:0.0} s", "0", moved.ExitCode == 0),
            new("writes answered 503 during the move / without Retry-After", $"{Tally.N(unavailable.Count)} / {Tally.N(withoutRetryAfter)}", "… / 0", withoutRetryAfter == 0),
            new("writes answered other errors during the move (a lost race, sent again, is none)", Tally.N(otherErrors.Count), "0", otherErrors.Count == 0),
            new("writes sent during the move never acknowledged", Tally.N(unanswered), "0", unanswered == 0),
            new("acknowledged during the move, missing from the target shard", $"{Tally.N(missing.Count)} of {Tally.N(acknowledged.Count)}", "0", missing.Count == 0 && acknowledged.Count > 0),
            new("the tenant's rows left in the source shard", Tally.N(leftInSource.Count), "0", leftInSource.Count == 0),
            new("audit verify after the move", audit.ExitCode == 0 ? "passes" : $"exit {audit.ExitCode}", "passes", audit.ExitCode == 0),
        ], findings);
    }

    /// <summary>The tables of the service's schema that still hold rows of the tenant in this database, with their counts.</summary>
    private static async Task<List<string>> TenantRows(string connectionString, string tenantId, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        var tables = new List<string>();
        await using (var command = new NpgsqlCommand("""
            select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace join pg_attribute a on a.attrelid = c.oid
            where n.nspname = 'enrolment' and c.relkind in ('r', 'p') and not c.relispartition and a.attname = 'tenant_id' and not a.attisdropped
            and c.relname <> 'tenant_fences' -- a moved tenant's fence stays in the shard it left, on purpose (docs/scale-out.md)
            """, connection))
        await using (var reader = await command.ExecuteReaderAsync(ct))
            while (await reader.ReadAsync(ct)) tables.Add(reader.GetString(0));
        var left = new List<string>();
        foreach (var table in tables)
        {
            await using var command = new NpgsqlCommand($"select count(*) from enrolment.\"{table}\" where tenant_id = $1", connection);
            command.Parameters.AddWithValue(tenantId);
            if ((long)(await command.ExecuteScalarAsync(ct))! is var n and > 0) left.Add($"{table}: {n}");
        }
        return left;
    }

    /// <summary>
    /// What a failed command said: its output without its host's JSON log lines and the command-line banner, blanks
    /// collapsed, its first and last 600 characters (the error is first, a usage text or a stack may follow).
    /// </summary>
    private static string Tail(string output)
    {
        string[] banner = ["Searching ", "for commands", "PublicKeyToken", "commands"];
        var lines = output.Split('\n')
            .Where(l => !l.StartsWith("{\"Timestamp\"", StringComparison.Ordinal) || l.Contains("\"LogLevel\":\"Error\"", StringComparison.Ordinal))
            .Where(l => !banner.Any(b => l.StartsWith(b, StringComparison.Ordinal)) && l.Trim().Length > 0);
        var text = Regex.Replace(string.Join(" / ", lines.Select(l => l.Trim())), @"\s+", " ");
        return text.Length > 1200 ? text[..600] + " … " + text[^600..] : text;
    }

    /// <summary>Runs one command of the service against the master; its stdout is kept in memory only (a secret may be on it).</summary>
    private static async Task<(int ExitCode, string StdOut, string StdErr)> Cli(ScenarioContext context, string[] args, TimeSpan timeout, CancellationToken ct)
    {
        using var process = context.StartCommand!(args);
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            await process.WaitForExitAsync(CancellationToken.None);
            ct.ThrowIfCancellationRequested();
            throw new TimeoutException($"`{args[0]} {args.ElementAtOrDefault(1)}` did not finish within {timeout.TotalSeconds:0} s");
        }
        return (process.ExitCode, await stdout, await stderr);
    }
}
