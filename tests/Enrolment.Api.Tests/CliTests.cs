using Microsoft.Extensions.DependencyInjection;
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Enrolment.Api.Tests;

/// <summary>
/// The `tenants` command's output contract, run as the operator runs it: a separate process on the built service,
/// against the same database as the test host, whose API then accepts (or refuses) what the command issued.
/// </summary>
public sealed class CliTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(180); // ~5 s on a quiet machine; far more under load
    private static readonly Regex SecretFormat = new("^es_[A-Za-z0-9_-]{40,}$");

    internal sealed record CliResult(int ExitCode, string StdOut, string StdErr)
    {
        public string[] Lines => StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).Where(l => l.Trim().Length > 0).ToArray();
        public string LastLine => Lines.LastOrDefault() ?? "";
        public override string ToString() => $"exit {ExitCode}\n--- stdout\n{StdOut}\n--- stderr\n{(StdErr.Length > 4000 ? StdErr[^4000..] : StdErr)}";
    }

    /// <summary>
    /// The built service. Its own output directory when it can be found next to this test project (that is what
    /// an operator runs): JasperFx scans every assembly in the application's directory for commands, and this
    /// test assembly there references xunit, which the service's deps.json cannot resolve. Else the copy in the
    /// test's output directory.
    /// </summary>
    private static readonly Lazy<string> ServiceDll = new(() =>
    {
        var testOutput = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var framework = testOutput.Name;
        var configuration = testOutput.Parent?.Name ?? "Release";
        for (var dir = testOutput; dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "src", "Enrolment.Api", "bin", configuration, framework, "Enrolment.Api.dll");
            if (File.Exists(candidate)) return candidate;
        }
        return Path.Combine(AppContext.BaseDirectory, "Enrolment.Api.dll");
    });

    internal static async Task<CliResult> Cli(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(ServiceDll.Value)!,
        };
        start.ArgumentList.Add(ServiceDll.Value);
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["ConnectionStrings__Enrolment"] = AppFixture.ConnectionString;
        start.Environment["DOTNET_ENVIRONMENT"] = "Development";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Development";

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(ProcessTimeout);
        try { await process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException($"`{string.Join(' ', args)}` did not end within {ProcessTimeout}.");
        }
        return new CliResult(process.ExitCode, await stdout, await stderr);
    }

    private static string NewTenantId() => "eu-west-3_Cli" + Scenarios.RandomLetters(10);

    /// <summary>Runs a command that issues a secret; asserts success and a secret alone on stdout's last line, never on stderr.</summary>
    private static async Task<string> IssuedSecret(params string[] args)
    {
        var result = await Cli(args);
        Assert.True(result.ExitCode == 0, $"`{string.Join(' ', args)}` failed: {result}");
        var secret = result.LastLine;
        Assert.True(secret.StartsWith("es_", StringComparison.Ordinal) && secret.Length >= 43 && SecretFormat.IsMatch(secret),
            $"The last line of stdout must be the secret alone: {result}");
        Assert.DoesNotContain(secret, result.StdErr);
        Assert.Single(result.Lines, l => l.Contains(secret, StringComparison.Ordinal));
        return secret;
    }

    [Fact]
    public async Task Tenants_add_prints_the_secret_alone_on_the_last_line_and_it_authenticates_with_all_scopes()
    {
        var tenant = NewTenantId();
        var secret = await IssuedSecret("tenants", "add", tenant);

        (await Get("/users/u1/enrolments", Basic(tenant, secret))).AssertStatus(200);
        (await Put("/content/c1", new { title = "t" }, Basic(tenant, secret))).AssertStatus(200);
    }

    [Fact]
    public async Task Tenants_add_with_read_scope_issues_a_secret_that_reads_but_cannot_write()
    {
        var tenant = NewTenantId();
        var secret = await IssuedSecret("tenants", "add", tenant, "--scopes", "api/read");

        (await Get("/users/u1/enrolments", Basic(tenant, secret))).AssertStatus(200);
        (await Put("/content/c1", new { title = "t" }, Basic(tenant, secret))).AssertProblem(403);
    }

    [Fact]
    public async Task Tenants_add_of_an_existing_tenant_fails_and_issues_nothing()
    {
        var tenant = NewTenantId();
        var (all, _, _) = await CreateTenant(tenant);

        var result = await Cli("tenants", "add", tenant);

        Assert.True(result.ExitCode != 0, $"Adding an existing tenant must fail: {result}");
        Assert.DoesNotContain(result.Lines, l => l.Contains("es_", StringComparison.Ordinal));
        (await Get("/users/u1/enrolments", Basic(tenant, all))).AssertStatus(200);
    }

    [Fact]
    public async Task Tenants_add_secret_issues_another_working_secret_and_the_first_keeps_working()
    {
        var tenant = NewTenantId();
        var (first, _, _) = await CreateTenant(tenant);

        var second = await IssuedSecret("tenants", "add-secret", tenant);

        Assert.NotEqual(first, second);
        (await Get("/users/u1/enrolments", Basic(tenant, second))).AssertStatus(200);
        (await Get("/users/u1/enrolments", Basic(tenant, first))).AssertStatus(200);
    }

    [Fact]
    public async Task Tenants_list_shows_the_tenant_and_its_secret_ids_but_never_a_secret()
    {
        var tenant = NewTenantId();
        var (all, read, write) = await CreateTenant(tenant);

        var list = await Cli("tenants", "list");

        Assert.True(list.ExitCode == 0, $"`tenants list` failed: {list}");
        Assert.Contains(list.Lines, l => l.StartsWith(tenant, StringComparison.Ordinal));
        var block = list.Lines.SkipWhile(l => !l.StartsWith(tenant, StringComparison.Ordinal)).Skip(1).TakeWhile(l => l.StartsWith(' ')).ToArray();
        Assert.Equal(3, block.Length);
        foreach (var scope in new[] { "api/all", "api/read", "api/write" })
            Assert.Single(block, l => Regex.IsMatch(l, @"secret\s+[0-9a-f]+\s") && l.Contains(scope, StringComparison.Ordinal) && l.Contains("active", StringComparison.Ordinal));
        foreach (var secret in new[] { all, read, write })
        {
            Assert.DoesNotContain(secret, list.StdOut);
            Assert.DoesNotContain(secret, list.StdErr);
        }
        Assert.DoesNotContain(list.Lines, l => l.Contains("es_", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Tenants_revoke_secret_stops_that_secret_and_only_that_secret()
    {
        var tenant = NewTenantId();
        var (all, read, _) = await CreateTenant(tenant); // secrets in order: api/all, api/read, api/write; none used yet

        var list = await Cli("tenants", "list");
        Assert.True(list.ExitCode == 0, $"`tenants list` failed: {list}");
        var block = list.Lines.SkipWhile(l => !l.StartsWith(tenant, StringComparison.Ordinal)).Skip(1).TakeWhile(l => l.StartsWith(' ')).ToArray();
        var readLine = Assert.Single(block, l => l.Contains("api/read", StringComparison.Ordinal));
        var secretId = Regex.Match(readLine, @"secret\s+([0-9a-f]+)").Groups[1].Value;
        Assert.False(string.IsNullOrEmpty(secretId), $"No secret id in '{readLine}'");

        var revoke = await Cli("tenants", "revoke-secret", tenant, secretId);
        Assert.True(revoke.ExitCode == 0, $"`tenants revoke-secret` failed: {revoke}");

        var response = await Host.Send(HttpMethod.Get, "/users/u1/enrolments", Basic(tenant, read), clientIp: System.Net.IPAddress.Parse(Scenarios.RandomIp()));
        response.AssertProblem(401);
        (await Get("/users/u1/enrolments", Basic(tenant, all))).AssertStatus(200);
    }

    [Fact]
    public async Task Audit_verify_exits_0_with_its_count_on_an_intact_history_and_1_naming_the_link_a_psql_edit_broke()
    {
        var assignment = await OpenAssignmentFor("u1", "u2");
        var enrolment = await EnrolmentIdFor(assignment, "u1");
        (await Complete("x1", "u1", "c1")).AssertStatus(200);
        Assert.True((await Cli("audit", "checkpoint")).ExitCode == 0);

        var intact = await Cli("audit", "verify", "--tenant", TenantId);
        Assert.True(intact.ExitCode == 0, intact.ToString());
        // Two enrolments and the assignment.
        Assert.Matches(@"audit verify: OK: [3-9] events in 3 streams of 1 tenant\(s\) intact", intact.LastLine);
        Assert.Contains(intact.Lines, l => l.StartsWith($"anchor {TenantId} checkpoint ", StringComparison.Ordinal));

        // The completion's instant changed with SQL, as someone with database access could.
        await using (var command = Host.Services.GetRequiredService<Npgsql.NpgsqlDataSource>().CreateCommand(
            "update enrolment.mt_events set data = jsonb_set(data, '{completedAt}', to_jsonb('2020-01-01T00:00:00Z'::text)) " +
            "where tenant_id = $1 and stream_id = $2 and type = 'enrolment_completed'"))
        {
            command.Parameters.AddWithValue(TenantId);
            command.Parameters.AddWithValue(Guid.Parse(enrolment));
            Assert.Equal(1, await command.ExecuteNonQueryAsync());
        }
        var broken = await Cli("audit", "verify", "--tenant", TenantId);
        Assert.True(broken.ExitCode == 1, broken.ToString());
        Assert.Contains($"enrolment {enrolment}", broken.StdErr);
        Assert.Contains("data differs", broken.StdErr);
        Assert.StartsWith($"audit verify: FAILED at tenant {TenantId}", broken.LastLine);
    }

    [Fact]
    public async Task Seed_in_parallel_writes_every_stream_with_its_document_at_the_stream_s_version_and_an_intact_chain()
    {
        var label = "Cli" + Scenarios.RandomLetters(8);
        var seeded = await Cli("seed", "--tenants", "3", "--enrolments", "50", "--batch", "7", "--label", label, "--parallel", "2");
        Assert.True(seeded.ExitCode == 0, seeded.ToString());
        var summary = System.Text.Json.JsonDocument.Parse(seeded.LastLine).RootElement;
        Assert.Equal(150, summary.GetProperty("events").GetInt64());
        var tenants = summary.GetProperty("tenants").EnumerateArray().Select(t => t.GetProperty("tenantId").GetString()!).ToArray();
        Assert.Equal([$"eu-west-1_{label}0", $"eu-west-1_{label}1", $"eu-west-1_{label}2"], tenants);

        var dataSource = Host.Services.GetRequiredService<Npgsql.NpgsqlDataSource>();
        foreach (var (tenant, count) in tenants.Zip([17L, 17L, 16L]))
        {
            // Each enrolment's document carries its stream's version (3 events), as FetchForWriting and the set-based
            // appends' version guard expect; events and chain rows, 3 per enrolment.
            await using var command = dataSource.CreateCommand(
                "select (select count(*) from enrolment.mt_doc_enrolment where tenant_id = $1 and mt_version = 3), " +
                "(select count(*) from enrolment.mt_doc_enrolment where tenant_id = $1), " +
                "(select count(*) from enrolment.mt_events where tenant_id = $1 and stream_id in (select id from enrolment.mt_doc_enrolment where tenant_id = $1)), " +
                "(select count(*) from enrolment.audit_chain where tenant_id = $1)");
            command.Parameters.AddWithValue(tenant);
            await using var reader = await command.ExecuteReaderAsync();
            await reader.ReadAsync();
            Assert.Equal((count, count, 3 * count, 3 * count + 1), (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3)));
        }
        var verified = await Cli("audit", "verify", "--tenant", tenants[1]);
        Assert.True(verified.ExitCode == 0, verified.ToString());
    }
}
