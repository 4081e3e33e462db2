using Enrolment.Benchmarks;

// ./build/bench.sh drives these; each is usable alone:
//   baseline --port 5091 --connection <cs>          the bare ASP.NET + Npgsql server the service is compared with
//   targets  --connection <cs> --out <dir> --seed <seed.json>... [--small-label S] [--sample N]
//                                                   request lists for wrk (one request a line), baseline write tables
//   count-completions --connection <cs>            completion events, completion records, completed views (nothing lost)
//   fanout   --url <service> --tenant <id> --secret <s> --connection <cs> [--count 100000]
//                                                   assign an audience of N through the service, until all readable
//   fanout-baseline --connection <cs> [--count 100000]   COPY the same number of event and document rows
//   conflicts --url <service> --tenant <id> --secret <s> --connection <cs> [--pairs 200]
//                                                   each completion sent twice at once; the summaries' lag afterwards
//   first-load --url <service> --tenant <id> --secret <s> --assignment <id> [--loads 50]
//                                                   the pages' first load of an assignment (FirstLoad.cs)
//   rebuild-baseline --connection <cs>              read + deserialise every enrolment event (no fold, no write)
//   transition-lag --connection <cs> --label T --expected N [--timeout 600]
//                                                   wait until N seeded enrolments are overdue; lag distribution
//   bus-lag  --transport postgresql|rabbitmq --connection <cs> --label T --expected N [--timeout 1200]
//            [--since <unix s>] [--uri amqp://… --exchange enrolment.events --queue <own queue>]
//                                                   started before the due instant: until the burst's N integration
//                                                   events are consumable on the bus (BusLag.cs)
//   shard-targets --connection <shard cs>... --seed <seed.json>... --out <file> [--completions 60000]
//                                                   comparison 10: completions over every shard's open enrolments, shuffled
//   report   --dir bench-results                    bench-results/raw/*.json → report.md + report.json
var command = args.FirstOrDefault() ?? "";
var options = Options.Parse(args.Skip(1).ToArray());
return command switch
{
    "baseline" => await Baseline.Run(options),
    "targets" => await Targets.Run(options),
    "count-completions" => await Targets.CountCompletions(options),
    "fanout" => await FanOut.Service(options),
    "fanout-baseline" => await FanOut.Baseline(options),
    "conflicts" => await Conflicts.Run(options),
    "first-load" => await FirstLoad.Run(options),
    "rebuild-baseline" => await Rebuild.Baseline(options),
    "transition-lag" => await Transitions.Lag(options),
    "bus-lag" => await BusLag.Run(options),
    "shard-targets" => await Shards.Targets(options),
    "report" => Report.Run(options),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Enrolment.Benchmarks baseline|targets|count-completions|fanout|fanout-baseline|conflicts|first-load|rebuild-baseline|transition-lag|bus-lag|shard-targets|report [--option value ...] (see Program.cs)");
    return 2;
}

namespace Enrolment.Benchmarks
{
    public sealed class Options(Dictionary<string, List<string>> values)
    {
        public static Options Parse(string[] args)
        {
            var values = new Dictionary<string, List<string>>();
            for (var i = 0; i < args.Length; i++)
            {
                if (!args[i].StartsWith("--")) throw new ArgumentException($"Unexpected argument '{args[i]}'");
                var key = args[i][2..];
                var value = i + 1 < args.Length && !args[i + 1].StartsWith("--") ? args[++i] : "true";
                if (!values.TryGetValue(key, out var list)) values[key] = list = [];
                list.Add(value);
            }
            return new Options(values);
        }

        public string Get(string key, string? fallback = null) =>
            values.TryGetValue(key, out var v) ? v[^1] : fallback ?? throw new ArgumentException($"--{key} is required");

        public IReadOnlyList<string> All(string key) => values.TryGetValue(key, out var v) ? v : [];
        public int Int(string key, int fallback) => values.TryGetValue(key, out var v) ? int.Parse(v[^1]) : fallback;
    }
}
