using System.Net.Http.Headers;
using System.Text;

namespace Enrolment.Reliability;

/// <summary>One tenant the scenarios act as: its id and a secret of each scope.</summary>
public sealed record TenantCredentials(string TenantId, string AllSecret, string ReadSecret, string WriteSecret)
{
    public AuthenticationHeaderValue Basic(string secret) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{TenantId}:{secret}")));

    public AuthenticationHeaderValue All => Basic(AllSecret);
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
}

public interface IServiceControl
{
    Task Start(CancellationToken ct);
    /// <summary>SIGKILL: no shutdown hooks, no flush.</summary>
    Task KillHard();
    Task Stop();
    /// <summary>Waits until /health/ready answers 200; returns how long that took.</summary>
    Task<TimeSpan> WaitUntilReady(TimeSpan timeout, CancellationToken ct);
}

public interface IDatabaseControl
{
    Task Stop();
    Task Start();
}

/// <summary>One measured figure: what was counted, its value, and the goal it is held to ("" = reported only).</summary>
public sealed record Figure(string Name, string Value, string Goal = "");

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
