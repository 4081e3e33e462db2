using System.Diagnostics;
using Npgsql;

namespace Enrolment.Reliability.Harness;

/// <summary>
/// The PostgreSQL cluster under the service (Debian's pg_ctlcluster): stopped with `-m fast` (sessions are cut,
/// as in a crash or a failover) and started again. The cluster must belong to the reliability run alone.
/// </summary>
public sealed class PostgresCluster(string version, string name, string connectionString, Action<string> log) : IDatabaseControl
{
    public string Version => version;
    public string Name => name;

    public async Task Stop()
    {
        await Run("stop", "-m", "fast");
        log($"PostgreSQL {version}/{name} stopped");
    }

    /// <summary>Starts the cluster and returns once it accepts connections.</summary>
    public async Task Start()
    {
        await Run("start");
        await WaitUntilAccepting(TimeSpan.FromSeconds(60));
        log($"PostgreSQL {version}/{name} started");
    }

    /// <summary>Starts the cluster if it does not accept connections (a scenario may have left it stopped).</summary>
    public async Task EnsureStarted()
    {
        if (await Accepting()) return;
        log($"PostgreSQL {version}/{name} is not accepting connections; starting it");
        await Start();
    }

    public async Task<bool> Accepting()
    {
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, Timeout = 3 };
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync();
            return true;
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException) { return false; }
    }

    private async Task WaitUntilAccepting(TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!await Accepting())
        {
            if (clock.Elapsed > timeout) throw new TimeoutException($"PostgreSQL {version}/{name} did not accept connections within {timeout.TotalSeconds:0} s.");
            await Task.Delay(100);
        }
    }

    private async Task Run(params string[] action)
    {
        // pg_ctlcluster runs the server as its owner (postgres) when called as root; otherwise sudo must allow it.
        var asRoot = Environment.UserName == "root";
        var info = new ProcessStartInfo(asRoot ? "pg_ctlcluster" : "sudo")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (!asRoot) { info.ArgumentList.Add("-n"); info.ArgumentList.Add("pg_ctlcluster"); }
        info.ArgumentList.Add(version);
        info.ArgumentList.Add(name);
        foreach (var a in action) info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"pg_ctlcluster {version} {name} {string.Join(' ', action)} failed ({process.ExitCode}): {await stderr}{await stdout}");
    }
}
