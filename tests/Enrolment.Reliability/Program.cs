using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using Enrolment.Reliability;
using Enrolment.Reliability.Harness;
using Npgsql;

// Enrolment.Reliability run --service-dll <path> --connection <cs> --pg-cluster <version>/<name> --out <dir>
//                           [--scenario <name>]... [--seed N] [--port P] [--second-connection <cs>]
// Enrolment.Reliability list
// Starts the service as a separate process, creates two tenants with its CLI, runs the selected scenarios (all by
// default) in a fixed order, and writes <out>/report.md and report.json. Exit code 1 if any scenario missed a goal.

var scenarios = Discover();
if (args.Length == 0 || args[0] is "-h" or "--help" or "help") return Usage(0);
if (args[0] == "list")
{
    foreach (var s in scenarios) Console.WriteLine($"{s.Name}\t{s.Promise}");
    return 0;
}
if (args[0] != "run") return Usage(2);

string? serviceDll = null, connection = null, pgCluster = null, outDir = null, secondConnection = null;
var selected = new List<string>();
var seed = Random.Shared.Next(1, 1_000_000);
var port = 0; // 0: a free port, picked below
for (var i = 1; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--service-dll": serviceDll = Next(); break;
        case "--connection": connection = Next(); break;
        case "--pg-cluster": pgCluster = Next(); break;
        case "--out": outDir = Next(); break;
        case "--scenario": selected.Add(Next()); break;
        case "--seed": seed = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--port": port = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--second-connection": secondConnection = Next(); break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return Usage(2);
    }
}
if (serviceDll is null || connection is null || pgCluster is null || outDir is null || !pgCluster.Contains('/')) return Usage(2);
var unknown = selected.Where(n => scenarios.All(s => s.Name != n)).ToList();
if (unknown.Count > 0)
{
    Console.Error.WriteLine($"unknown scenario {string.Join(", ", unknown)}; known: {string.Join(", ", scenarios.Select(s => s.Name))}");
    return 2;
}
var toRun = selected.Count == 0 ? scenarios : scenarios.Where(s => selected.Contains(s.Name)).ToList();

var logDir = Path.Combine(outDir, "logs");
Directory.CreateDirectory(logDir);
var started = DateTimeOffset.UtcNow;
void Log(string line) => Console.Error.WriteLine($"[reliability] {DateTime.UtcNow:HH:mm:ss} {line}");

static int FreePort()
{
    using var free = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
    free.Start();
    return ((System.Net.IPEndPoint)free.LocalEndpoint).Port;
}
if (port == 0) port = FreePort();
var baseAddress = new Uri($"http://127.0.0.1:{port}");
var environment = new Dictionary<string, string>
{
    ["ASPNETCORE_URLS"] = baseAddress.ToString().TrimEnd('/'),
    ["ConnectionStrings__Enrolment"] = connection,
    ["ASPNETCORE_ENVIRONMENT"] = "Development",
    ["DOTNET_ENVIRONMENT"] = "Development",
    // The scenarios are load; the per-tenant rate limit is tested where a scenario asks for it (StartWith).
    ["Limits__RequestsPerSecondPerTenant"] = "1000000",
};
var version = pgCluster[..pgCluster.IndexOf('/')];
var clusterName = pgCluster[(pgCluster.IndexOf('/') + 1)..];
var database = new PostgresCluster(version, clusterName, connection, Log);
await database.EnsureStarted();

await using var service = new ServiceProcess(serviceDll, environment, baseAddress, logDir, Log);
using var run = new CancellationTokenSource();
// Ctrl-C or a SIGTERM ends the run in order: the scenario is cancelled and the service stopped (await using above).
using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Interrupt);
using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Interrupt);
void Interrupt(PosixSignalContext signal)
{
    signal.Cancel = true;
    Log($"{signal.Signal}: cancelling the run");
    run.Cancel();
}

Log($"starting the service on {baseAddress} (the first start creates the schema)");
await service.Start(run.Token);
var firstReady = await service.WaitUntilReady(TimeSpan.FromMinutes(3), run.Token);
Log($"service ready after {firstReady.TotalSeconds:0.0} s; creating two tenants with the CLI");

// Random tenant ids, so a run never meets an earlier run's data even on a database that was not re-created.
string TenantId(char label) => $"eu-west-2_Rel{label}{Guid.NewGuid():N}"[..26];
var cliLog = Path.Combine(logDir, "cli.log");
var tenants = await Task.WhenAll(
    Tenants.Create(serviceDll, environment, TenantId('A'), cliLog, run.Token),
    Tenants.Create(serviceDll, environment, TenantId('B'), cliLog, run.Token));
Log($"tenants {string.Join(", ", tenants.Select(t => t.TenantId))}, each with an api/all, an api/read and an api/write secret");

// More nodes of the service for the scenarios that ask (scale-out): the same settings on a port of their own.
var extraNodes = new List<ServiceProcess>();
IServiceNode NewNode(string name)
{
    var address = new Uri($"http://127.0.0.1:{FreePort()}");
    var nodeEnvironment = new Dictionary<string, string>(environment) { ["ASPNETCORE_URLS"] = address.ToString().TrimEnd('/') };
    var node = new ServiceProcess(serviceDll, nodeEnvironment, address, logDir, Log, name);
    lock (extraNodes) extraNodes.Add(node);
    return node;
}

var results = new List<ScenarioResult>();
foreach (var scenario in toRun)
{
    if (run.IsCancellationRequested) break;
    await database.EnsureStarted();
    if (!service.IsRunning) await service.Start(run.Token);
    await service.WaitUntilReady(TimeSpan.FromMinutes(2), run.Token);

    var context = new ScenarioContext
    {
        NewClient = () => new HttpClient(new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30) })
        {
            BaseAddress = baseAddress,
            Timeout = TimeSpan.FromSeconds(60),
        },
        ConnectionString = connection,
        Tenants = tenants,
        Service = service,
        Database = database,
        ServiceLogFiles = service.LogFiles,
        Scale = 1,
        Log = line => Log($"{scenario.Name}: {line}"),
        Seed = seed,
        BaseAddress = baseAddress,
        IssueMimecastKey = (tenantId, ct) => Tenants.IssueMimecastKey(serviceDll, environment, tenantId, cliLog, ct),
        StartCommand = args => Tenants.StartCommand(serviceDll, environment, args),
        NewNode = NewNode,
        SecondShardConnectionString = secondConnection,
    };
    Log($"── {scenario.Name}: {scenario.Promise}");
    var clock = Stopwatch.StartNew();
    ScenarioResult result;
    using (var limit = CancellationTokenSource.CreateLinkedTokenSource(run.Token))
    {
        limit.CancelAfter(TimeSpan.FromMinutes(10));
        try
        {
            result = await scenario.Run(context, limit.Token);
        }
        catch (Exception e)
        {
            result = new ScenarioResult(scenario.Name, scenario.Promise, false, [],
                [$"The scenario could not complete: {e.GetType().Name}: {e.Message}"], clock.Elapsed);
            Log($"{scenario.Name}: failed to complete: {e}");
        }
    }
    results.Add(result);
    Log($"── {scenario.Name}: {(result.Passed ? "pass" : "FAIL")} in {clock.Elapsed.TotalSeconds:0} s");
    foreach (var f in result.Figures) Log($"   {f.Name}: {f.Value}{(f.Goal.Length > 0 ? $" (goal {f.Goal})" : "")}");
    foreach (var f in result.Findings) Log($"   finding: {f}");

    // Leave the next scenario what the run promises: the database up, the service up with the default settings, and
    // no other node (a scenario that failed half-way may have left one running).
    foreach (var node in extraNodes) await node.DisposeAsync();
    extraNodes.Clear();
    await database.EnsureStarted();
    if (service.HasOverrides) { await service.Stop(); }
}

await service.Stop();
var report = new RunReport(started, DateTimeOffset.UtcNow, seed, await Machine(connection),
    $"{Path.GetFileName(serviceDll)} (Release) as a separate process on {baseAddress}, PostgreSQL cluster {pgCluster}, two tenants",
    toRun.Select(s => s.Name).ToList(), results);
await ReportWriter.Write(outDir, report);
Log($"wrote {Path.Combine(outDir, "report.md")}: {(report.Passed ? "every scenario met its goals" : "some scenarios missed a goal")}");
return report.Passed && results.Count == toRun.Count ? 0 : 1;

static List<IScenario> Discover()
{
    // Every IScenario in this assembly, in the order of the issue's list; any other scenario after them by name.
    string[] order = ["crash", "outage", "races", "fanout-races", "hostile", "isolation", "credentials"];
    return Assembly.GetExecutingAssembly().GetTypes()
        .Where(t => t is { IsClass: true, IsAbstract: false } && typeof(IScenario).IsAssignableFrom(t) && t.GetConstructor(Type.EmptyTypes) is not null)
        .Select(t => (IScenario)Activator.CreateInstance(t)!)
        .OrderBy(s => Array.IndexOf(order, s.Name) is var i and >= 0 ? i : order.Length)
        .ThenBy(s => s.Name, StringComparer.Ordinal)
        .ToList();
}

static int Usage(int code)
{
    Console.Error.WriteLine("usage: Enrolment.Reliability run --service-dll <path> --connection <cs> --pg-cluster <version>/<name> --out <dir> [--scenario <name>]... [--seed N] [--port P] [--second-connection <cs>]");
    Console.Error.WriteLine("       Enrolment.Reliability list");
    return code;
}

static async Task<string> Machine(string connection)
{
    string Read(string path) { try { return File.ReadAllText(path); } catch (IOException) { return ""; } catch (UnauthorizedAccessException) { return ""; } }
    var cpu = Read("/proc/cpuinfo").Split('\n').FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? RuntimeInformation.ProcessArchitecture.ToString();
    var memKb = Read("/proc/meminfo").Split('\n').FirstOrDefault(l => l.StartsWith("MemTotal", StringComparison.Ordinal))?.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
    var mem = memKb is null ? "?" : (double.Parse(memKb, CultureInfo.InvariantCulture) / 1048576).ToString("0.0", CultureInfo.InvariantCulture);
    var os = Read("/etc/os-release").Split('\n').FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))?.Split('=', 2)[1].Trim('"') ?? RuntimeInformation.OSDescription;
    var load = string.Join(", ", Read("/proc/loadavg").Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(3));
    string postgres;
    try
    {
        await using var c = new NpgsqlConnection(connection);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand("show server_version", c);
        postgres = ((string)(await cmd.ExecuteScalarAsync())!).Split(' ')[0];
    }
    catch (NpgsqlException) { postgres = "?"; }
    return $"{cpu}, {Environment.ProcessorCount} cores, {mem} GiB RAM, {os} (kernel {Environment.OSVersion.Version}), PostgreSQL {postgres}, {RuntimeInformation.FrameworkDescription}; load average at the end {load}";
}
