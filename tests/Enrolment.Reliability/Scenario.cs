using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Enrolment.Reliability;

/// <summary>One tenant the scenarios act as: its id and a secret of each scope.</summary>
public sealed record TenantCredentials(string TenantId, string AllSecret, string ReadSecret, string WriteSecret)
{
    public AuthenticationHeaderValue Basic(string secret) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{TenantId}:{secret}")));

    public AuthenticationHeaderValue All => Basic(AllSecret);

    public AuthenticationHeaderValue Read => Basic(ReadSecret);

    public AuthenticationHeaderValue Write => Basic(WriteSecret);
}

/// <summary>
/// Everything a scenario may use. <see cref="Service"/> and <see cref="Database"/> are null where the scenario runs
/// in-process (the lighter versions inside ./build/test.sh); scenarios that need them must say so and skip.
/// </summary>
public sealed class ScenarioContext
{
    /// <summary>Clients aimed at the service (base address set, no default credentials).</summary>
    public required Func<HttpClient> NewClient { get; init; }

    /// <summary>Npgsql connection string of the service's database, for counting what was (not) written.</summary>
    public required string ConnectionString { get; init; }

    /// <summary>Tenants created for this run (at least two), each with read, write and all-scope secrets.</summary>
    public required IReadOnlyList<TenantCredentials> Tenants { get; init; }

    /// <summary>Start / kill -9 / stop the service process; null in-process.</summary>
    public IServiceControl? Service { get; init; }

    /// <summary>Stop / start PostgreSQL under the service; null in-process.</summary>
    public IDatabaseControl? Database { get; init; }

    /// <summary>Files the service wrote its logs to (scanned for secrets); empty in-process.</summary>
    public IReadOnlyList<string> ServiceLogFiles { get; init; } = [];

    /// <summary>Scale factor: 1 for the full run, smaller for the in-process versions (e.g. 0.1 = a tenth of the requests).</summary>
    public double Scale { get; init; } = 1;

    /// <summary>Progress lines for the person watching the run (stderr in the console program).</summary>
    public Action<string> Log { get; init; } = _ => { };

    /// <summary>Seed for every random choice, printed in the report so a failing run can be replayed.</summary>
    public int Seed { get; init; } = Environment.TickCount;

    /// <summary>
    /// A client whose requests reach the service from this address. The service counts failed authentications per
    /// client address, so scenarios that fail on purpose spread them over addresses (and keep their valid traffic on an
    /// address that never fails). Null: the scenarios bind their sockets to loopback addresses (127.x.y.z) themselves.
    /// </summary>
    public Func<IPAddress, HttpClient>? NewClientFrom { get; init; }

    /// <summary>Issues a Mimecast key set for a tenant (`tenants mimecast-key`); null where the runner cannot (those probes are then skipped).</summary>
    public Func<string, CancellationToken, Task<MimecastKeySet>>? IssueMimecastKey { get; init; }

    /// <summary>Starts one of the service's commands (`enrolments rebuild`, ...) as its own process, output redirected; null in-process.</summary>
    public Func<string[], System.Diagnostics.Process>? StartCommand { get; init; }

    /// <summary>The service's base address (for raw sockets); null in-process.</summary>
    public Uri? BaseAddress { get; init; }

    /// <summary>
    /// Another node of the service (same configuration, its own free port), not started yet; the scenario starts it, may
    /// kill it, and disposes of it (which stops it). The argument names its log files. Null in-process.
    /// </summary>
    public Func<string, IServiceNode>? NewNode { get; init; }

    /// <summary>
    /// An empty database owned by the service's role on a second PostgreSQL cluster (build/reliability.sh makes it, port
    /// 5435), for the scale-out scenario to register as a shard; null where there is none.
    /// </summary>
    public string? SecondShardConnectionString { get; init; }
}

/// <summary>A Mimecast API 1.0 key set, as `tenants mimecast-key` prints it.</summary>
public sealed record MimecastKeySet(string AccessKey, string SecretKey, string AppId, string AppKey);

public interface IServiceControl
{
    /// <summary>Launches the process with the run's default settings (no-op if it runs); call <see cref="WaitUntilReady"/> next.</summary>
    Task Start(CancellationToken ct);
    /// <summary>
    /// Stops the service if it runs and launches it with these settings on top of the defaults (environment-variable
    /// names, e.g. Limits__RequestsPerSecondPerTenant). The harness restarts it with the defaults after the scenario.
    /// </summary>
    Task StartWith(IReadOnlyDictionary<string, string> settings, CancellationToken ct);
    /// <summary>True while the process launched last has not exited.</summary>
    bool IsRunning { get; }
    /// <summary>The id of the process launched last.</summary>
    int? ProcessId { get; }
    /// <summary>SIGKILL: no shutdown hooks, no flush.</summary>
    Task KillHard();
    Task Stop();
    /// <summary>Waits until /health/ready answers 200; returns how long that took.</summary>
    Task<TimeSpan> WaitUntilReady(TimeSpan timeout, CancellationToken ct);
}

/// <summary>One more process of the service, with its own address and log files.</summary>
public interface IServiceNode : IServiceControl, IAsyncDisposable
{
    string Name { get; }
    Uri BaseAddress { get; }
    /// <summary>Every log file this node wrote, one per start.</summary>
    IReadOnlyList<string> LogFiles { get; }
}

public interface IDatabaseControl
{
    Task Stop();
    Task Start();
}

/// <summary>
/// One measured figure: what was counted, its value, the goal it is held to ("" = reported only), and whether it met
/// the goal (null = not said; the report then infers it from the scenario's result and findings).
/// </summary>
public sealed record Figure(string Name, string Value, string Goal = "", bool? Met = null);

/// <summary>A scenario's outcome. <see cref="Passed"/> is false if any goal was missed; <see cref="Findings"/> say what.</summary>
public sealed record ScenarioResult(string Scenario, string Promise, bool Passed, IReadOnlyList<Figure> Figures, IReadOnlyList<string> Findings, TimeSpan Duration);

public interface IScenario
{
    /// <summary>Short name used on the command line (crash, outage, races, hostile, isolation, credentials).</summary>
    string Name { get; }

    /// <summary>The promise (README "What the service promises") this scenario proves.</summary>
    string Promise { get; }

    Task<ScenarioResult> Run(ScenarioContext context, CancellationToken ct);
}
