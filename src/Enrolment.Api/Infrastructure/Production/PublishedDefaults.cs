using System.Net;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Enrolment.Api.Infrastructure.Production;

/// <summary>
/// Outside Development the service refuses to start on a secret that this repository publishes: the development
/// key-encryption key, or the sample database / RabbitMQ passwords used against a server on another machine.
/// A forgotten setting then stops the deployment instead of quietly protecting production data with a public value.
/// </summary>
public static class PublishedDefaults
{
    /// <summary>The password db/start.sh gives the local `enrolment` role and appsettings.json uses.</summary>
    public const string DevelopmentDatabasePassword = "enrolment";

    public static void AddPublishedDefaultsCheck(this IServiceCollection services, IHostEnvironment environment)
    {
        if (environment.IsDevelopment()) return;
        // Validated when the host starts, before any hosted service: commands that never start the host (db-apply,
        // mimecast generate-key) still run, and the Mimecast cipher refuses the published key on its own.
        services.AddSingleton<IValidateOptions<Check>, Validator>();
        services.AddOptions<Check>().ValidateOnStart();
    }

    /// <summary>
    /// A feature area's own published values (a key in appsettings.json, a broker's default account): what is wrong with
    /// this configuration for production, one sentence per setting, each naming the setting and how to fix it.
    /// </summary>
    public delegate IEnumerable<string> Rule(IConfiguration configuration);

    /// <summary>Adds a feature area's rule to the check at start (outside Development).</summary>
    public static void AddPublishedDefaultsRule(this IServiceCollection services, Rule rule) => services.AddSingleton(rule);

    /// <summary>What is wrong with this configuration for production, one sentence per setting; empty when nothing is.</summary>
    public static IReadOnlyList<string> Find(IConfiguration configuration, IEnumerable<Rule> rules)
    {
        var problems = new List<string>();

        var signing = configuration["Auth:TokenSigningKey"]?.Trim();
        if (string.IsNullOrEmpty(signing) || signing == Auth.AccessTokens.DevelopmentSigningKey)
            problems.Add((string.IsNullOrEmpty(signing) ? "Auth:TokenSigningKey is not set" : "Auth:TokenSigningKey is the development key published in appsettings.json") +
                         ". It signs the access tokens of POST /oauth2/token: generate a key with `openssl rand -base64 32` and set it as the environment variable " +
                         "Auth__TokenSigningKey, the same on every node (docs/identity.md).");

        if (configuration.GetConnectionString(Persistence.ConnectionStringName) is { Length: > 0 } cs && UsesPublishedPassword(cs, out var dbHost))
            problems.Add($"ConnectionStrings:{Persistence.ConnectionStringName} connects to {dbHost} with the published development password '{DevelopmentDatabasePassword}'. " +
                         $"Give the database role a password of its own and set it in ConnectionStrings__{Persistence.ConnectionStringName}.");

        foreach (var rule in rules) problems.AddRange(rule(configuration));
        return problems;
    }

    private static bool UsesPublishedPassword(string connectionString, out string host)
    {
        host = "";
        NpgsqlConnectionStringBuilder builder;
        try { builder = new NpgsqlConnectionStringBuilder(connectionString); }
        catch (ArgumentException) { return false; } // Npgsql itself reports a malformed connection string at start
        host = builder.Host ?? "localhost";
        // A password only this machine's users can reach the server with is a local setup, not a leak.
        return builder.Password == DevelopmentDatabasePassword && !host.Split(',').All(h => IsLoopback(h.Split(':')[0]));
    }

    public static bool IsLoopback(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || host.StartsWith('/') // a Unix socket directory
        || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>Marker options type: validating it at start runs <see cref="Find"/>.</summary>
    public sealed class Check;

    private sealed class Validator(IConfiguration configuration, IEnumerable<Rule> rules) : IValidateOptions<Check>
    {
        public ValidateOptionsResult Validate(string? name, Check options)
        {
            var problems = Find(configuration, rules);
            return problems.Count == 0
                ? ValidateOptionsResult.Success
                : ValidateOptionsResult.Fail(problems.Select(p => "Refusing to start outside Development: " + p));
        }
    }
}
