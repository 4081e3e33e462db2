using System.Diagnostics;

namespace Enrolment.Reliability.Harness;

/// <summary>
/// Creates the run's tenants with the service's own CLI (`tenants add` / `tenants add-secret`), as an operator would.
/// A secret is printed once on the CLI's stdout: it is kept in memory only, never written to the run's logs.
/// </summary>
public static class Tenants
{
    public static async Task<TenantCredentials> Create(string serviceDll, IReadOnlyDictionary<string, string> environment, string tenantId, string cliLog, CancellationToken ct)
    {
        var all = await Cli(serviceDll, environment, ["tenants", "add", tenantId, "--scopes", "api/all"], cliLog, ct);
        var read = await Cli(serviceDll, environment, ["tenants", "add-secret", tenantId, "--scopes", "api/read"], cliLog, ct);
        var write = await Cli(serviceDll, environment, ["tenants", "add-secret", tenantId, "--scopes", "api/write"], cliLog, ct);
        return new TenantCredentials(tenantId, all, read, write);
    }

    /// <summary>Issues a Mimecast key set (`tenants mimecast-key`), printed once as JSON on the CLI's last stdout line.</summary>
    public static async Task<MimecastKeySet> IssueMimecastKey(string serviceDll, IReadOnlyDictionary<string, string> environment, string tenantId, string cliLog, CancellationToken ct)
    {
        var json = await Cli(serviceDll, environment, ["tenants", "mimecast-key", tenantId], cliLog, ct);
        return System.Text.Json.JsonSerializer.Deserialize<MimecastKeySet>(json, System.Text.Json.JsonSerializerOptions.Web)
            ?? throw new InvalidOperationException($"`tenants mimecast-key {tenantId}` printed no key set.");
    }

    /// <summary>Starts a CLI command of the service without waiting for it (stdout and stderr redirected).</summary>
    public static Process StartCommand(string serviceDll, IReadOnlyDictionary<string, string> environment, string[] args)
    {
        var info = new ProcessStartInfo("dotnet", [serviceDll, .. args])
        {
            WorkingDirectory = Path.GetDirectoryName(Path.GetFullPath(serviceDll))!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (key, value) in environment) info.Environment[key] = value;
        info.Environment["Logging__LogLevel__Default"] = "Warning";
        return Process.Start(info)!;
    }

    /// <summary>Runs one CLI command; returns the last line of its stdout (the new secret).</summary>
    private static async Task<string> Cli(string serviceDll, IReadOnlyDictionary<string, string> environment, string[] args, string cliLog, CancellationToken ct)
    {
        using var process = StartCommand(serviceDll, environment, args);
        // A cancelled run takes its CLI processes with it instead of leaving them behind.
        await using var cancel = ct.Register(() => { try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } });
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        await process.WaitForExitAsync(CancellationToken.None);
        ct.ThrowIfCancellationRequested();
        var errors = await stderr;
        lock (typeof(Tenants)) File.AppendAllText(cliLog, $"$ dotnet Enrolment.Api.dll {string.Join(' ', args)}\n{errors}\n");
        var secret = (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
        if (process.ExitCode != 0 || string.IsNullOrEmpty(secret))
            throw new InvalidOperationException($"`{string.Join(' ', args)}` failed (exit code {process.ExitCode}): {errors}");
        return secret;
    }
}
