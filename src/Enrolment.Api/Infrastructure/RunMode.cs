namespace Enrolment.Api.Infrastructure;

/// <summary>
/// How this process runs: as the service, or as one command of the CLI (tenants, db-apply, audit, ...), which must not
/// start background work (transitions, webhook sending, checkpoints) nor write logs to stdout.
/// </summary>
public sealed record RunMode(bool IsCommand)
{
    /// <summary>`run` and bare options (or nothing) start the service; any other first argument is a command.</summary>
    public static RunMode From(string[] args) => new(args.Length > 0 && !args[0].StartsWith('-') && args[0] != "run");

    public bool IsService => !IsCommand;
}
