using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Enrolment.Benchmarks;

/// <summary>
/// Turns the raw results of one ./build/bench.sh run (bench-results/raw/*.json: wrk summaries, seed summaries,
/// machine, memory, event counts) into report.md and report.json: per figure the service's number, the baseline's
/// number, their ratio, the goal, and whether it was met. A figure whose inputs are missing is "not measured".
/// </summary>
public static class Report
{
    public sealed record Figure(string Id, string Name, string Metric, double? Service, double? Baseline, double? Ratio, string Goal, bool? Met, string Note = "");

    /// <summary>Comparison 10: one figure against a pool of one shard and of two; the ratio is two ÷ one.</summary>
    public sealed record ShardFigure(string Name, string Metric, double? OneShard, double? TwoShards, double? Ratio, string Note = "");

    public static int Run(Options options)
    {
        var dir = options.Get("dir", "bench-results");
        var raw = Path.Combine(dir, "raw");
        JsonNode? Load(string name) => File.Exists(Path.Combine(raw, name + ".json")) ? JsonNode.Parse(File.ReadAllText(Path.Combine(raw, name + ".json"))) : null;
        double? Num(JsonNode? node, string key) => node?[key] is { } v ? v.GetValue<double>() : null;
        // A measurement that may have been cut off (its file then empty or partial) reads as absent.
        JsonNode? LoadOrNull(string name) { try { return Load(name); } catch (JsonException) { return null; } }

        var meta = Load("meta") ?? new JsonObject();
        var machine = Load("machine") ?? new JsonObject();
        var figures = new List<Figure>();
        double? Div(double? a, double? b) => a is { } x && b is { } y && y != 0 ? x / y : null;

        // (1) one enrolment by id, full stack vs bare endpoint, at the full size.
        var sFull = Load("wrk-service-read-full");
        var bFull = Load("wrk-baseline-read-full");
        var rpsRatio = Div(Num(sFull, "rps"), Num(bFull, "rps"));
        figures.Add(new("1", "Read one enrolment by id (full size)", "requests/s", Num(sFull, "rps"), Num(bFull, "rps"), rpsRatio, "≥ 0.6× baseline", rpsRatio >= 0.6));
        figures.Add(new("1", "Read one enrolment by id (full size)", "p50 ms", Num(sFull, "p50"), Num(bFull, "p50"), Div(Num(sFull, "p50"), Num(bFull, "p50")), "reported", null));
        figures.Add(new("1", "Read one enrolment by id (full size)", "server CPU ms per request", Num(sFull, "cpuMsPerRequest"), Num(bFull, "cpuMsPerRequest"), Div(Num(sFull, "cpuMsPerRequest"), Num(bFull, "cpuMsPerRequest")), "reported", null));
        figures.Add(new("1", "Read one enrolment by id (full size)", "p99 ms", Num(sFull, "p99"), Num(bFull, "p99"), Div(Num(sFull, "p99"), Num(bFull, "p99")), "reported", null));
        figures.Add(new("1", "Read one enrolment by id (full size)", "PostgreSQL CPU ms per request", Num(sFull, "dbCpuMsPerRequest"), Num(bFull, "dbCpuMsPerRequest"), Div(Num(sFull, "dbCpuMsPerRequest"), Num(bFull, "dbCpuMsPerRequest")), "reported", null,
            "the benchmark cluster's processes, background work included"));

        // (2) the same read at 10,000 and at the full size: service p99 ratio (the baseline's, for context).
        var sSmall = Load("wrk-service-read-small");
        var bSmall = Load("wrk-baseline-read-small");
        var growth = Div(Num(sFull, "p99"), Num(sSmall, "p99"));
        figures.Add(new("2", "Read p99 at 10,000 enrolments", "p99 ms", Num(sSmall, "p99"), Num(bSmall, "p99"), Div(Num(sSmall, "p99"), Num(bSmall, "p99")), "reported", null));
        figures.Add(new("2", "Read p99 growth, full size ÷ 10,000", "p99 ratio", growth, Div(Num(bFull, "p99"), Num(bSmall, "p99")), null, "service ≤ 1.25", growth <= 1.25,
            "service and baseline columns are each side's own full÷10k ratio; at 32 connections on 2 cores"));
        // The same with 4 connections, which do not saturate the machine: what the size of the data adds to the tail.
        var sSmall4 = Load("wrk-service-read-small-4");
        var bSmall4 = Load("wrk-baseline-read-small-4");
        var sFull4 = Load("wrk-service-read-full-4");
        var bFull4 = Load("wrk-baseline-read-full-4");
        var growth4 = Div(Num(sFull4, "p99"), Num(sSmall4, "p99"));
        figures.Add(new("2", "Read p99 at 10,000 enrolments, 4 connections", "p99 ms", Num(sSmall4, "p99"), Num(bSmall4, "p99"), Div(Num(sSmall4, "p99"), Num(bSmall4, "p99")), "reported", null));
        figures.Add(new("2", "Read p99 at the full size, 4 connections", "p99 ms", Num(sFull4, "p99"), Num(bFull4, "p99"), Div(Num(sFull4, "p99"), Num(bFull4, "p99")), "reported", null));
        figures.Add(new("2", "Read p99 growth, full size ÷ 10,000, 4 connections", "p99 ratio", growth4, Div(Num(bFull4, "p99"), Num(bSmall4, "p99")), null, "service ≤ 1.25", growth4 is null ? null : growth4 <= 1.25,
            "service and baseline columns are each side's own full÷10k ratio; 4 connections do not saturate 2 cores"));

        // (3) a list page (status filter, cursor) vs the single read.
        var sList = Load("wrk-service-list-full");
        var bList = Load("wrk-baseline-list-full");
        var listVsRead = Div(Num(sList, "p99"), Num(sFull, "p99"));
        figures.Add(new("3", "List page of 100 (status=open, cursor), full size", "requests/s", Num(sList, "rps"), Num(bList, "rps"), Div(Num(sList, "rps"), Num(bList, "rps")), "reported", null));
        figures.Add(new("3", "List page of 100 (status=open, cursor), full size", "p99 ms", Num(sList, "p99"), Num(bList, "p99"), Div(Num(sList, "p99"), Num(bList, "p99")), "reported", null));
        figures.Add(new("3", "List page of 100 (status=open, cursor), full size", "server CPU ms per request", Num(sList, "cpuMsPerRequest"), Num(bList, "cpuMsPerRequest"), Div(Num(sList, "cpuMsPerRequest"), Num(bList, "cpuMsPerRequest")), "reported", null));
        var sList4 = Load("wrk-service-list-full-4");
        var bList4 = Load("wrk-baseline-list-full-4");
        figures.Add(new("3", "List page of 100, full size, 4 connections", "p99 ms", Num(sList4, "p99"), Num(bList4, "p99"), Div(Num(sList4, "p99"), Num(bList4, "p99")), "≤ 1.2× baseline",
            sList4 is null || bList4 is null ? null : Div(Num(sList4, "p99"), Num(bList4, "p99")) <= 1.2));
        figures.Add(new("3", "List page of 100 (status=open, cursor), full size", "PostgreSQL CPU ms per request", Num(sList, "dbCpuMsPerRequest"), Num(bList, "dbCpuMsPerRequest"), Div(Num(sList, "dbCpuMsPerRequest"), Num(bList, "dbCpuMsPerRequest")), "reported", null));
        figures.Add(new("3", "List page p99 ÷ single read p99", "p99 ratio", listVsRead, Div(Num(bList, "p99"), Num(bFull, "p99")), null, "service ≤ 1.5", listVsRead <= 1.5,
            "service and baseline columns are each side's own list÷read ratio"));

        // (4) completions over HTTP vs one event insert + one document update per transaction.
        var sWrite = Load("wrk-service-completions");
        var bWrite = Load("wrk-baseline-completions");
        var writeRatio = Div(Num(sWrite, "rps"), Num(bWrite, "rps"));
        var before = Load("completions-before");
        var after = Load("completions-after");
        var note = "";
        bool? nothingLost = null;
        if (before is not null && after is not null && sWrite is not null)
        {
            var events = Num(after, "completedEvents") - Num(before, "completedEvents");
            var records = Num(after, "completionRecordsThatCompleted") - Num(before, "completionRecordsThatCompleted");
            var views = Num(after, "completeViews") - Num(before, "completeViews");
            var ok = Num(sWrite, "requests") - Num(sWrite, "non2xx");
            // wrk goes round the target list: on a small dataset it comes back to enrolments it already completed, and
            // a repeated completionId answers 200 and changes nothing. So at least min(2xx, distinct targets) new events.
            var targetsFile = Path.Combine(raw, "targets", "completions-measured.tsv");
            var targets = File.Exists(targetsFile) ? File.ReadLines(targetsFile).Count(l => l.Length > 0) : double.MaxValue;
            var distinct = Math.Min(ok ?? 0, targets);
            nothingLost = events == records && events == views && events >= distinct;
            note = $"answered 2xx {ok:F0} ({distinct:F0} distinct enrolments); completion events +{events:F0}, completion records +{records:F0}, complete views +{views:F0}: " +
                   (nothingLost == true ? "nothing lost" : "MISMATCH");
        }
        figures.Add(new("4", "Record a completion (16 connections)", "requests/s", Num(sWrite, "rps"), Num(bWrite, "rps"), writeRatio, "≥ 0.5× baseline, nothing lost",
            writeRatio is null ? null : writeRatio >= 0.5 && nothingLost == true, note));
        figures.Add(new("4", "Record a completion (16 connections)", "p99 ms", Num(sWrite, "p99"), Num(bWrite, "p99"), Div(Num(sWrite, "p99"), Num(bWrite, "p99")), "reported", null));

        figures.Add(new("4", "Record a completion (16 connections)", "server CPU ms per request", Num(sWrite, "cpuMsPerRequest"), Num(bWrite, "cpuMsPerRequest"), Div(Num(sWrite, "cpuMsPerRequest"), Num(bWrite, "cpuMsPerRequest")), "reported", null));
        figures.Add(new("4", "Record a completion (16 connections)", "PostgreSQL CPU ms per request", Num(sWrite, "dbCpuMsPerRequest"), Num(bWrite, "dbCpuMsPerRequest"), Div(Num(sWrite, "dbCpuMsPerRequest"), Num(bWrite, "dbCpuMsPerRequest")), "reported", null,
            "the benchmark cluster's processes: the service's include its summaries' daemon catching up"));

        // (5) fan-out through the service until every enrolment is readable vs a raw COPY of as many rows.
        var fanS = Load("fanout-service");
        var fanB = Load("fanout-baseline");
        var fanRatio = Div(Num(fanS, "enrolmentsPerSecond"), Num(fanB, "enrolmentsPerSecond"));
        figures.Add(new("5", $"Fan-out: assign an audience of {Num(fanS, "count") ?? Num(meta, "fanout"):N0} users", "enrolments/s", Num(fanS, "enrolmentsPerSecond"), Num(fanB, "enrolmentsPerSecond"), fanRatio,
            "≥ 0.2× raw COPY", fanRatio is null ? null : fanRatio >= 0.2 && Num(fanS, "readable") >= Num(fanS, "count"),
            fanS is null ? "" : $"service: fan-out operation completed after {Num(fanS, "operationSeconds"):F1} s, all {Num(fanS, "readable"):N0} enrolments readable after {Num(fanS, "readableSeconds"):F1} s; baseline: one transaction, binary COPY of {Num(fanB, "count"):N0} event rows and {Num(fanB, "count"):N0} document rows"));
        figures.Add(new("5", "Fan-out: end to end until all readable", "seconds", Num(fanS, "readableSeconds"), Num(fanB, "seconds"), Div(Num(fanS, "readableSeconds"), Num(fanB, "seconds")), "reported", null));

        // An audit checkpoint round: over the whole seeded history once, then over the completion run's events only. The
        // second must cost the rows it covers, whatever the history (issue #32: ≤ 1.25× from 10,000 to 1,000,000).
        var cpHistory = LoadOrNull("checkpoint-history");
        var cpRun = LoadOrNull("checkpoint-after-completions");
        figures.Add(new("11", $"Audit checkpoint over the seeded history ({Num(cpHistory, "events") ?? 0:N0} chain rows)", "ms", Num(cpHistory, "ms"), null, null, "reported", null,
            cpHistory is null ? "" : $"{Num(cpHistory, "taken"):N0} tenants anchored; {Div(Num(cpHistory, "ms") * 1000, Num(cpHistory, "events")):F1} µs per row"));
        figures.Add(new("11", $"Audit checkpoint after the completion run ({Num(cpRun, "events") ?? 0:N0} new chain rows)", "ms", Num(cpRun, "ms"), null, null,
            "reported; 1,000,000 ÷ 10,000 ≤ 1.25 (docs/benchmarks.md)", null,
            cpRun is null ? "" : $"{Num(cpRun, "taken"):N0} tenants anchored; {Div(Num(cpRun, "ms") * 1000, Num(cpRun, "events")):F1} µs per new row"));

        var conflicts = LoadOrNull("conflicts");
        figures.Add(new("12", $"Summaries caught up after a burst of {Num(conflicts, "pairs") ?? 0:N0} conflicting completion pairs", "seconds", Num(conflicts, "lagSeconds"), null, null,
            "reported; no 3 s stall per hole; 1,000,000 ÷ 10,000 ≤ 1.25", null,
            conflicts is null ? "" : $"answers {conflicts["answers"]?.ToJsonString()}; burst {Num(conflicts, "burstSeconds"):F1} s; Marten gap fillers in the store {Num(conflicts, "tombstones"):N0}"));

        // Issue #32's work-proportional figures, each measured at 10,000 (the small phase, after the summaries caught up
        // with the seeding) and at the full size: the full ÷ 10,000 ratio must stay ≤ 1.25. The service column is the
        // full size, the baseline column the 10,000 figure.
        void Growth(string id, string name, string metric, JsonNode? full, JsonNode? small, string key, string note)
        {
            var ratio = Div(Num(full, key), Num(small, key));
            figures.Add(new(id, name, metric, Num(full, key), Num(small, key), ratio, "full ÷ 10,000 ≤ 1.25", ratio is null ? null : ratio <= 1.25,
                "service column: the full size, baseline column: 10,000" + (note == "" ? "" : "; " + note)));
        }
        var cpSmall = LoadOrNull("checkpoint-after-conflicts-small");
        var cpFull = LoadOrNull("checkpoint-after-conflicts");
        Growth("11", "Audit checkpoint after the conflict burst (full size vs 10,000)", "ms", cpFull, cpSmall, "ms",
            cpFull is null || cpSmall is null ? "" : $"new chain rows {Num(cpFull, "events"):N0} (full) and {Num(cpSmall, "events"):N0} (10,000)");
        var conflictsSmall = LoadOrNull("conflicts-small");
        Growth("12", "Summaries caught up after the conflict burst (full size vs 10,000)", "seconds", conflicts, conflictsSmall, "lagSeconds",
            conflictsSmall is null ? "" : $"10,000: answers {conflictsSmall["answers"]?.ToJsonString()}, burst {Num(conflictsSmall, "burstSeconds"):F1} s");
        var loadSmall = LoadOrNull("first-load-small");
        var loadFull = LoadOrNull("first-load");
        Growth("13", "Pages: an assignment's first load (full size vs 10,000)", "p50 ms", loadFull, loadSmall, "p50",
            loadFull is null ? "" : $"GET the assignment, its summary and first page of overdue and open people at once, /changes?after=now and one poll; {Num(loadFull, "loads"):N0} loads each; full size: the largest seeded assignment, 10,000: a small tenant's; changes read {Num(loadFull, "changesRead"):N0}");
        Growth("13", "Pages: an assignment's first load (full size vs 10,000)", "p99 ms", loadFull, loadSmall, "p99", "");

        // (10) an assignment's enrolments as CSV (every row, streamed) vs PostgreSQL's COPY of the same rows, and the
        // service's resident set during it: the export must not hold the rows in memory.
        var csv = Load("csv-export");
        var csvGrowth = Div(Num(csv, "rssPeakKiB") - Num(csv, "rssBeforeKiB"), 1024);
        figures.Add(new("10", $"CSV export of an assignment's {Num(csv, "rows") ?? 0:N0} enrolments", "rows/s", Num(csv, "rowsPerSecond"), Num(csv, "baselineRowsPerSecond"),
            Div(Num(csv, "rowsPerSecond"), Num(csv, "baselineRowsPerSecond")), "reported", null,
            csv is null ? "" : $"service: {Num(csv, "seconds"):F1} s for {Num(csv, "rows"):N0} rows; baseline: COPY … TO STDOUT (CSV) of {Num(csv, "baselineRows"):N0} rows in {Num(csv, "baselineSeconds"):F1} s"));
        figures.Add(new("10", "CSV export: resident set growth during the export", "MiB", csvGrowth, null, null, "≤ 64 MiB (constant memory)",
            csvGrowth is null ? null : csvGrowth <= 64, csv is null ? "" : $"RSS {Num(csv, "rssBeforeKiB") / 1024:F0} MiB before, {Num(csv, "rssPeakKiB") / 1024:F0} MiB at most during the export"));

        // (6) projection rebuild vs reading and deserialising the same events.
        var rebS = Load("rebuild-service");
        var rebB = Load("rebuild-baseline");
        var rebSRate = Div(Num(rebS, "events"), Num(rebS, "seconds"));
        var rebRatio = Div(rebSRate, Num(rebB, "eventsPerSecond"));
        figures.Add(new("6", $"Rebuild the enrolment documents from {Num(rebS, "events") ?? 0:N0} events", "events/s", rebSRate, Num(rebB, "eventsPerSecond"), rebRatio, "≥ 0.3× raw read + deserialise", rebRatio is null ? null : rebRatio >= 0.3,
            rebS is null ? "" : $"service: `enrolments rebuild --restart` (the service's CLI, in place, the service running idle) took {Num(rebS, "seconds"):F0} s; baseline read and deserialised {Num(rebB, "events"):N0} events in {Num(rebB, "seconds"):F0} s"));

        // (7) N enrolments due at one instant: lag from the due instant to the stored overdue event, and the read
        // latency (a steady, non-saturating read load) while they transition vs idle.
        var tr = Load("transitions");
        var idle = Load("wrk-service-read-idle");
        var chunks = Directory.Exists(raw) ? Directory.GetFiles(raw, "wrk-read-under-transitions-*.json").Select(f => JsonNode.Parse(File.ReadAllText(f))).ToList() : [];
        var busyP99 = chunks.Count == 0 ? null : chunks.Max(c => Num(c, "p99"));
        var allDone = tr is not null && Num(tr, "overdue") >= Num(tr, "expected") && Num(tr, "duplicateStreams") == 0;
        var expected = Num(tr, "expected") ?? Num(meta, "due");
        figures.Add(new("7", $"{expected:N0} enrolments due at one instant: all overdue after", "seconds", Num(tr, "maxSeconds"), null, null, "≤ 60 s, each exactly once",
            tr is null ? null : allDone && Num(tr, "maxSeconds") <= 60,
            tr is null ? "" : $"{Num(tr, "overdue"):N0} of {Num(tr, "expected"):N0} became overdue, {Num(tr, "duplicateStreams"):F0} streams with two overdue events; lag min {Num(tr, "minSeconds"):F1} s, median {Num(tr, "medianSeconds"):F1} s, p90 {Num(tr, "p90Seconds"):F1} s, p99 {Num(tr, "p99Seconds"):F1} s"));
        figures.Add(new("7", "Transition lag", "median s", Num(tr, "medianSeconds"), null, null, "reported", null));
        figures.Add(new("7", "Transition lag", "p99 s", Num(tr, "p99Seconds"), null, null, "reported", null));
        var readRatio = Div(busyP99, Num(idle, "p99"));
        figures.Add(new("7", $"Read p99 during the transitions ÷ idle ({meta["readLoadConnections"]} connections)", "p99 ms", busyP99, Num(idle, "p99"), readRatio, "≤ 2× idle", readRatio is null ? null : readRatio <= 2,
            chunks.Count == 0 ? "" : $"service column: the worst of {chunks.Count} consecutive 15 s read runs while the transitions ran; baseline column: the service's own idle p99"));

        // (7) the bus: from the due instant until the last of the burst's integration events is consumable, per transport.
        var notMeasured = new Dictionary<string, string>();
        foreach (var (transport, name) in new[] { ("postgresql", "embedded PostgreSQL transport"), ("rabbitmq", "RabbitMQ") })
        {
            var bus = LoadOrNull("bus-" + transport);
            var n = Num(bus, "expected") ?? expected;
            if (bus?["seconds"] is null)
            {
                notMeasured[$"7 ({transport})"] = $"Bus, {name}: last of the burst's {n:N0} integration events consumable after (seconds) — " +
                    (bus?["notMeasured"]?.GetValue<string>() ?? (bus is null ? "no result (see logs/bus-" + transport + ".log)"
                        : $"only {Num(bus, "consumable"):N0} of {n:N0} consumable after {Num(bus, "waitedSeconds"):F0} s"));
                continue;
            }
            var d = bus["detail"];
            var how = transport == "postgresql"
                ? $"{name}: the first snapshot (polled 4×/s near the end) with all {Num(bus, "consumable"):N0} overdue events of the burst as rows of `{bus["measuredBy"]}`, " +
                  $"the table a `ListenToPostgresqlQueue` consumer reads (rows inserted since the due set was seeded, matched by content), and none left for it in " +
                  $"`wolverine_outgoing_envelopes`; all rows there after {Num(bus, "countReachedSeconds"):F1} s; " +
                  $"the rows' own insert times run from {Num(d, "firstRowSeconds"):F1} s to {Num(d, "lastRowSeconds"):F1} s after the due instant"
                : $"{name}: the service restarted with `Bus__Transport=rabbitmq`, a second burst of {n:N0} (label E) due at one instant, a durable {bus["measuredBy"]} before it, " +
                  $"as a consumer's would be; the first snapshot (passive declare, polled 4×/s near the end) with {Num(bus, "consumable"):N0} ready messages and the outbox empty " +
                  $"(all there after {Num(bus, "countReachedSeconds"):F1} s); then consumed: {Num(d, "consumed"):N0} messages, " +
                  $"{Num(d, "overdueEventsOfBurst"):N0} overdue events of the burst for {Num(d, "distinctEnrolments"):N0} distinct enrolments" +
                  (LoadOrNull("transitions-rabbitmq") is { } trR ? $"; on this run all overdue after {Num(trR, "maxSeconds"):F1} s" : "");
            figures.Add(new("7", $"Bus, {name}: last of the burst's {n:N0} integration events consumable after", "seconds", Num(bus, "seconds"), null, null, "reported", null, how));
            figures.Add(new("7", $"Bus, {name}: the burst's integration events", "events/s (from the due instant)", Num(bus, "eventsPerSecond"), null, null, "reported", null));
        }

        // (8) peak resident memory of the service process.
        var rss = Load("rss");
        var hwm = Num(rss, "vmHwmKiB") / 1024.0;
        figures.Add(new("8", "Peak resident memory of the service (VmHWM)", "MiB", hwm, null, null, "≤ 512 MiB", hwm is null ? null : hwm <= 512));

        // The summaries' daemon catching up with the seeded events before the full-size figures (bench.sh wait_summaries).
        var catchUp = Load("summary-catchup");
        if (catchUp is not null)
        {
            var caught = catchUp["caughtUp"]?.GetValue<bool>() == true;
            var events = Num(catchUp, "events");
            var seconds = Num(catchUp, "seconds");
            figures.Add(new("9", $"Summaries' async projection catching up with {events ?? 0:N0} seeded events", "events/s",
                caught && seconds > 0 ? events / seconds : null, null, null, "reported", null,
                caught ? $"caught up in {seconds:N0} s (polled every 5 s); the full-size figures were taken after it"
                       : $"NOT caught up after {seconds:N0} s ({Num(catchUp, "lagLeft"):N0} events left): the full-size figures include the daemon's work"));
        }

        var seedSmall = Load("seed-small");
        var seedFull = Load("seed-full");
        var seeds = new[] { seedSmall, seedFull }.Where(s => s is not null).ToList();
        var seedEnrolments = seeds.Sum(s => Num(s, "enrolments") ?? 0);
        var seedEvents = seeds.Sum(s => Num(s, "events") ?? 0);
        var seedSeconds = seeds.Sum(s => Num(s, "seconds") ?? 0);

        var shardFigures = Shards(raw, Load, Num, Div);
        var onlyShards = meta["only"]?.GetValue<string>() == "shards";

        var machineLine = $"{machine["cpu"]?.GetValue<string>() ?? "?"}, {machine["nproc"]} cores, {machine["memGiB"]} GiB RAM, " +
                          $"PostgreSQL {machine["postgres"]?.GetValue<string>() ?? "?"}, .NET {machine["dotnet"]?.GetValue<string>() ?? "?"}";
        var size = Num(meta, "size") ?? 0;
        var md = new StringBuilder();
        md.AppendLine($"# Benchmark report ({meta["startedAt"]?.GetValue<string>()})");
        md.AppendLine();
        md.AppendLine($"- Machine: {machineLine}");
        // --only shards: comparison 10 alone, none of the others measured.
        if (!onlyShards)
        {
            md.AppendLine($"- Dataset: {size:N0} enrolments ({seedEvents:N0} events) over {meta["tenants"]} tenants; the 10,000 figures read only the first 10,000 seeded, measured before the rest was added");
            md.AppendLine($"- Load: wrk, {meta["threads"]} threads, {meta["connections"]} connections (completions: {meta["writeConnections"]}; the 4-connection rows: 4), {meta["duration"]} per run after a {meta["warmup"]} warm-up (completions: {meta["writeWarmup"] ?? meta["warmup"]}), each side alone; both servers, wrk and PostgreSQL share this machine");
            md.AppendLine($"- Seeding ({seedFull?["mode"] ?? seedSmall?["mode"]} mode): {seedEnrolments:N0} enrolments, {seedEvents:N0} events in {seedSeconds:F0} s = {Div(seedEnrolments, seedSeconds):N0} enrolments/s, {Div(seedEvents, seedSeconds):N0} events/s");
            var loads = new[] { sFull, bFull, sSmall, bSmall, sList, bList, sWrite, bWrite, idle }.Where(x => x?["load"] is not null).Select(x => x!["load"]!.GetValue<string>()).ToList();
            if (loads.Count > 0) md.AppendLine($"- 1-minute load average at the end of each run: {string.Join(", ", loads)} (it counts the run's own runnable threads too, wrk's connections and their PostgreSQL backends among them; a figure far above the other runs' means something else was using the CPUs)");
            md.AppendLine();
            md.AppendLine("| # | figure | metric | service | baseline | ratio | goal | met |");
            md.AppendLine("| --- | --- | --- | ---: | ---: | ---: | --- | --- |");
            foreach (var f in figures)
                md.AppendLine($"| {f.Id} | {f.Name} | {f.Metric} | {Fmt(f.Service)} | {Fmt(f.Baseline)} | {(f.Ratio is { } r ? r.ToString("F2", CultureInfo.InvariantCulture) + "×" : "")} | {f.Goal} | {(f.Met is null ? (f.Goal == "reported" ? "" : "not measured") : f.Met.Value ? "yes" : "**no**")} |");
            foreach (var (id, text) in notMeasured) md.AppendLine($"| {id} | {text} | | | | | | not measured |");
            md.AppendLine();
            foreach (var f in figures.Where(f => f.Note != "")) md.AppendLine($"- ({f.Id}) {f.Note}");
            var errors = new[] { ("service read 10k", sSmall), ("baseline read 10k", bSmall), ("service read full", sFull), ("baseline read full", bFull), ("service list", sList), ("baseline list", bList), ("service completions", sWrite), ("baseline completions", bWrite),
                    ("service read 10k, 4 connections", sSmall4), ("baseline read 10k, 4 connections", bSmall4), ("service read full, 4 connections", sFull4), ("baseline read full, 4 connections", bFull4),
                    ("service list, 4 connections", sList4), ("baseline list, 4 connections", bList4) }
                .Where(x => x.Item2 is not null && (Num(x.Item2, "non2xx") > 0 || Num(x.Item2, "socketErrors") > 0))
                .Select(x => $"{x.Item1}: {Num(x.Item2, "non2xx"):F0} non-2xx, {Num(x.Item2, "socketErrors"):F0} socket errors").ToList();
            md.AppendLine(errors.Count == 0 ? "- Every measured request answered 2xx." : "- Errors: " + string.Join("; ", errors));
        }

        if (shardFigures.Count > 0)
        {
            md.AppendLine();
            md.AppendLine($"## Comparison 10: shards ({Num(meta, "shardsSize"):N0} enrolments over {meta["tenants"]} tenants, one service node)");
            md.AppendLine();
            md.AppendLine("Both PostgreSQL clusters, the service and wrk share this machine's cores: the two-shard column shows what each shard " +
                          "costs when two share one machine, not capacity added. Per-shard rows divide each shard's own count by the run's seconds.");
            md.AppendLine();
            md.AppendLine("| figure | metric | 1 shard | 2 shards | 2 ÷ 1 |");
            md.AppendLine("| --- | --- | ---: | ---: | ---: |");
            foreach (var f in shardFigures)
                md.AppendLine($"| {f.Name} | {f.Metric} | {Fmt(f.OneShard)} | {Fmt(f.TwoShards)} | {(f.Ratio is { } r ? r.ToString("F2", CultureInfo.InvariantCulture) + "×" : "")} |");
            md.AppendLine();
            foreach (var f in shardFigures.Where(f => f.Note != "")) md.AppendLine($"- ({f.Name}) {f.Note}");
        }

        File.WriteAllText(Path.Combine(dir, "report.md"), md.ToString());
        var json = new JsonObject
        {
            ["machine"] = machine.DeepClone(),
            ["meta"] = meta.DeepClone(),
            ["seeding"] = new JsonObject { ["enrolments"] = seedEnrolments, ["events"] = seedEvents, ["seconds"] = seedSeconds, ["small"] = seedSmall?.DeepClone(), ["full"] = seedFull?.DeepClone() },
            ["figures"] = JsonSerializer.SerializeToNode(figures, JsonSerializerOptions.Web),
            ["notMeasured"] = JsonSerializer.SerializeToNode(notMeasured),
            ["shards"] = JsonSerializer.SerializeToNode(shardFigures, JsonSerializerOptions.Web),
        };
        File.WriteAllText(Path.Combine(dir, "report.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.Out.Write(md.ToString());
        return 0;
    }

    /// <summary>
    /// Comparison 10 from raw/shards-1 and raw/shards-2 (build/bench.sh shards_phase): per phase the wrk summary of the
    /// completion run, per shard the completion events it stored and its cluster's CPU, the burst's lag per shard
    /// (transition-lag) and its cluster's CPU, and the master's registry and node-table statements.
    /// </summary>
    private static List<ShardFigure> Shards(string raw, Func<string, JsonNode?> load, Func<JsonNode?, string, double?> num, Func<double?, double?, double?> div)
    {
        JsonNode? Read(string path) { try { return File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) : null; } catch (JsonException) { return null; } }
        List<(string Shard, JsonNode Node)> PerShard(int n, string prefix) =>
            Directory.Exists(Path.Combine(raw, $"shards-{n}"))
                ? Directory.GetFiles(Path.Combine(raw, $"shards-{n}"), prefix + "-*.json").OrderBy(f => f, StringComparer.Ordinal)
                    .Select(f => (Path.GetFileNameWithoutExtension(f)[(prefix.Length + 1)..], Read(f))).Where(x => x.Item2 is not null).Select(x => (x.Item1, x.Item2!)).ToList()
                : [];
        var phases = new[] { 1, 2 }.Select(n => new
        {
            Wrk = load($"wrk-shards-{n}-completions"),
            Completions = PerShard(n, "completions"),
            Transitions = PerShard(n, "transitions"),
            Burst = PerShard(n, "burst"),
            Idle = PerShard(n, "idle"),
            Master = Read(Path.Combine(raw, $"shards-{n}", "master.json")),
        }).ToArray();
        if (phases.All(p => p.Wrk is null && p.Transitions.Count == 0)) return [];

        double? Sum(IEnumerable<(string, JsonNode)> xs, string key) { var v = xs.Select(x => num(x.Item2, key)).ToList(); return v.Count == 0 || v.Any(x => x is null) ? null : v.Sum(); }
        double? Seconds(int i) => num(phases[i].Wrk, "seconds");
        double? Stored(int i) => div(Sum(phases[i].Completions, "completed"), Seconds(i));
        double? StoredPerShard(int i) => phases[i].Completions.Count == 0 ? null : Stored(i) / phases[i].Completions.Count;
        double? CompletionDbMs(int i) => div(Sum(phases[i].Completions, "dbCpuMs"), Sum(phases[i].Completions, "completed"));
        double? BurstAll(int i) => phases[i].Transitions.Count == 0 ? null : phases[i].Transitions.Max(t => num(t.Node, "maxSeconds"));
        double? BurstRatePerShard(int i) => phases[i].Transitions.Count == 0 ? null
            : phases[i].Transitions.Average(t => div(num(t.Node, "overdue"), num(t.Node, "maxSeconds")) ?? double.NaN) is var a && double.IsNaN(a) ? null : a;
        double? BurstDbMs(int i) => div(Sum(phases[i].Burst, "dbCpuMs"), Sum(phases[i].Transitions, "overdue"));
        double? MasterPerSecond(int i) => div(num(phases[i].Master, "registryCalls") + num(phases[i].Master, "wolverineNodeCalls"), num(phases[i].Master, "seconds"));
        ShardFigure Row(string name, string metric, Func<int, double?> value, string note = "") => new(name, metric, value(0), value(1), div(value(1), value(0)), note);

        string Completions(int i) => string.Join(", ", phases[i].Completions.Select(c =>
            $"{c.Shard} {div(num(c.Node, "completed"), num(c.Node, "seconds")):N0}/s ({num(c.Node, "completed"):N0} stored, PostgreSQL CPU {div(num(c.Node, "dbCpuMs"), num(c.Node, "completed")):F2} ms each)"));
        string Bursts(int i) => string.Join(", ", phases[i].Transitions.Select(t =>
            $"{t.Shard} {num(t.Node, "overdue"):N0} of {num(t.Node, "expected"):N0} overdue after {num(t.Node, "maxSeconds"):F1} s (median {num(t.Node, "medianSeconds"):F1} s, {num(t.Node, "duplicateStreams"):F0} twice)"));
        var wrkNote = string.Join("; ", new[] { 0, 1 }.Where(i => phases[i].Wrk is not null).Select(i =>
            $"{i + 1} shard(s): {num(phases[i].Wrk, "requests"):N0} requests in {Seconds(i):F1} s, {num(phases[i].Wrk, "non2xx"):N0} non-2xx, load {phases[i].Wrk!["load"]}"));
        var master = string.Join("; ", new[] { 0, 1 }.Where(i => phases[i].Master is not null).Select(i =>
            $"{i + 1} shard(s): {num(phases[i].Master, "registryCalls"):N0} on the pool registry (enrolment_pool), {num(phases[i].Master, "wolverineNodeCalls"):N0} on Wolverine's node tables, " +
            $"over {Sum(phases[i].Completions, "completed"):N0} stored completions"));
        double? IdleDbPerShard(int i) => phases[i].Idle.Count == 0 ? null : div(Sum(phases[i].Idle, "dbCpuMs"), Sum(phases[i].Idle, "seconds")); // the mean over the shards
        double? IdleService(int i) => phases[i].Idle.Count == 0 ? null : div(num(phases[i].Idle[0].Node, "serviceCpuMs"), num(phases[i].Idle[0].Node, "seconds"));
        string Idle(int i) => string.Join(", ", phases[i].Idle.Select(x => $"{x.Shard} {div(num(x.Node, "dbCpuMs"), num(x.Node, "seconds")):N0} ms/s"));
        return
        [
            Row("Idle: the node's CPU", "ms per second", IdleService),
            Row("Idle: PostgreSQL CPU per shard's server", "ms per second per shard", IdleDbPerShard, string.Join("; ", new[] { 0, 1 }.Select(i => $"{i + 1} shard(s): {Idle(i)}"))),
            Row("Completions (comparison 4's load, spread over the tenants)", "requests/s", i => num(phases[i].Wrk, "rps"), wrkNote),
            Row("Completions stored, all shards", "completions/s", Stored, string.Join("; ", new[] { 0, 1 }.Select(i => $"{i + 1} shard(s): {Completions(i)}"))),
            Row("Completions stored, per shard", "completions/s per shard", StoredPerShard),
            Row("Completions", "p99 ms", i => num(phases[i].Wrk, "p99")),
            Row("Completions: service CPU per request (one node)", "ms", i => num(phases[i].Wrk, "cpuMsPerRequest")),
            Row("Completions: PostgreSQL CPU per stored completion (every cluster)", "ms", CompletionDbMs),
            Row($"Due burst of {Sum(phases[0].Transitions, "expected") ?? Sum(phases[1].Transitions, "expected"):N0} at one instant: all overdue after", "seconds", BurstAll,
                string.Join("; ", new[] { 0, 1 }.Select(i => $"{i + 1} shard(s): {Bursts(i)}"))),
            Row("Due burst, per shard", "transitions/s per shard", BurstRatePerShard),
            Row("Due burst: PostgreSQL CPU per transition (every cluster)", "ms", BurstDbMs),
            Row("Due burst: the node's CPU per transition", "ms", i => phases[i].Burst.Count == 0 ? null : div(num(phases[i].Burst[0].Node, "serviceCpuMs"), Sum(phases[i].Transitions, "overdue"))),
            Row("Master: registry and node-table statements during the completions", "calls/s", MasterPerSecond, master),
        ];
    }

    private static string Fmt(double? v) => v switch
    {
        null => "—",
        >= 100 => v.Value.ToString("N0", CultureInfo.InvariantCulture),
        _ => v.Value.ToString("0.00", CultureInfo.InvariantCulture),
    };
}
