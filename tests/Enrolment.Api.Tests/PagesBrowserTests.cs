using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Marten;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Wolverine;
using Xunit.Abstractions;

namespace Enrolment.Api.Tests;

/// <summary>
/// The pages under /app/ in a real headless Chromium (Debian's, driven by playwright-core from
/// src/Enrolment.Pages/test/pages.test.mjs) against the real service listening on a real port, with time-driven
/// transitions on: an assignment of 300 people, some completed on time, the rest overdue, some of those late, a few
/// archived, one stream changed behind the service's back. Screenshots of every page go to TestResults/pages.
/// </summary>
public sealed class PagesBrowserTests(AppFixture fixture, ITestOutputHelper output) : ApiTest(fixture)
{
    private const string Content = "security-101";
    private const string ContentTitle = "Security basics, 2027";
    private const string WaiveReason = "Holds the external certificate";
    private static readonly string Root = FindRoot();

    [Fact]
    public async Task A_new_user_signs_in_reads_the_assignment_pages_through_the_overdue_steps_back_in_time_and_signs_out_on_desktop_and_phone()
    {
        var pages = Path.Combine(Root, "src", "Enrolment.Pages");
        Assert.True(File.Exists(Path.Combine(pages, "node_modules", "playwright-core", "package.json")),
            "playwright-core is not installed: ./build/test.sh installs it (./build/pages.sh --browser).");
        Assert.True(File.Exists(Path.Combine(Root, "src", "Enrolment.Api", "wwwroot", "app", "index.html")),
            "The pages are not built: ./build/test.sh builds them (./build/pages.sh).");

        await using var service = new KestrelService();
        service.UseKestrel(0);
        service.StartServer();
        var baseUrl = service.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().Replace("[::]", "127.0.0.1");
        using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
        http.DefaultRequestHeaders.Authorization = AuthenticationHeaderValue.Parse(Basic(TenantId, AllSecret));

        var assignmentId = await Seed(http);
        var tampered = await Tamper(http, assignmentId, "u050");

        var shots = Environment.GetEnvironmentVariable("ENROLMENT_PAGES_SCREENSHOTS") ?? Path.Combine(Root, "TestResults", "pages");
        var start = new ProcessStartInfo("node", [Path.Combine(pages, "test", "pages.test.mjs")])
        {
            WorkingDirectory = pages, RedirectStandardOutput = true, RedirectStandardError = true,
            Environment =
            {
                ["PAGES_BASE_URL"] = baseUrl, ["PAGES_TENANT"] = TenantId, ["PAGES_READ_SECRET"] = ReadSecret,
                ["PAGES_WRITE_SECRET"] = WriteSecret, ["PAGES_ASSIGNMENT_ID"] = assignmentId, ["PAGES_CONTENT_ID"] = Content, ["PAGES_CONTENT_TITLE"] = ContentTitle,
                ["PAGES_ON_TIME_USER"] = "u001", ["PAGES_LATE_USER"] = "u101", ["PAGES_TAMPERED_USER"] = tampered,
                ["PAGES_WAIVED_USER"] = "u131", ["PAGES_WAIVE_REASON"] = WaiveReason,
                ["PAGES_SCREENSHOTS"] = shots,
            },
        };
        using var node = Process.Start(start)!;
        var lines = new List<string>();
        node.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (lines) lines.Add(e.Data); };
        node.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (lines) lines.Add(e.Data); };
        node.BeginOutputReadLine();
        node.BeginErrorReadLine();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(6));
        try { await node.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException) { node.Kill(entireProcessTree: true); }
        await Task.Delay(100);
        string text;
        lock (lines) text = string.Join('\n', lines);
        output.WriteLine(text);
        Assert.True(node.HasExited && node.ExitCode == 0, $"The browser test failed (screenshots in {shots}):\n{text}");
    }

    /// <summary>
    /// 300 people: u001–u100 complete on time, the rest overdue; then u101–u130 complete late, u131–u140 are waived,
    /// u141 has its due date extended (open again), u291–u300 are archived.
    /// </summary>
    private async Task<string> Seed(HttpClient http)
    {
        (await http.PutAsJsonAsync($"/content/{Content}", new { title = ContentTitle })).EnsureSuccessStatusCode();
        var users = Enumerable.Range(1, 300).Select(i => $"u{i:000}").ToArray();
        await Operation(http, await http.PutAsJsonAsync("/audiences/finance/members", new { userIds = users }));
        var now = DateTimeOffset.UtcNow;
        var due = now.AddSeconds(25);
        var created = await http.PostAsJsonAsync("/assignments", new
        {
            audienceId = "finance", primaryContentId = Content, availableDate = Iso(now.AddDays(-1)), dueDate = Iso(due),
        });
        var assignment = await Operation(http, created);
        var assignmentId = assignment["assignment"]!["id"]!.GetValue<string>();

        await Completions(http, users[..100], "on-time");
        while (DateTimeOffset.UtcNow < due) await Task.Delay(500);
        // The clock makes the rest overdue on its own: wait until nobody is open.
        await Until(async () => (await List(http, assignmentId, "status=open&limit=1"))["items"]!.AsArray().Count == 0, "every uncompleted enrolment overdue");
        await Completions(http, users[100..130], "late");
        async Task<string> Enrolment(string user) => (await List(http, assignmentId, $"userId={user}"))["items"]![0]!["id"]!.GetValue<string>();
        foreach (var user in users[130..140])
            (await http.PostAsJsonAsync($"/assignments/{assignmentId}/enrolments/{await Enrolment(user)}/waive", new { reason = WaiveReason })).EnsureSuccessStatusCode();
        (await http.PostAsJsonAsync($"/assignments/{assignmentId}/enrolments/{await Enrolment("u141")}/extend",
            new { dueDate = Iso(DateTimeOffset.UtcNow.AddDays(7)), reason = "Back from leave" })).EnsureSuccessStatusCode();
        foreach (var user in users[290..])
            (await http.PostAsync($"/assignments/{assignmentId}/enrolments/{await Enrolment(user)}/archive", null)).EnsureSuccessStatusCode();
        return assignmentId;
    }

    /// <summary>Changes the stored data of the user's completion event directly in PostgreSQL, as an intruder would.</summary>
    private async Task<string> Tamper(HttpClient http, string assignmentId, string user)
    {
        var id = Guid.Parse((await List(http, assignmentId, $"userId={user}"))["items"]![0]!["id"]!.GetValue<string>());
        var schema = Host.Services.GetRequiredService<IDocumentStore>().Options.Events.DatabaseSchemaName;
        await using var connection = new NpgsqlConnection(AppFixture.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            $"update {schema}.mt_events set data = jsonb_set(data, '{{answer}}', '100') where tenant_id = @t and stream_id = @s and version = 2", connection);
        command.Parameters.AddWithValue("t", TenantId);
        command.Parameters.AddWithValue("s", id);
        Assert.Equal(1, await command.ExecuteNonQueryAsync());
        return user;
    }

    private static async Task Completions(HttpClient http, string[] users, string prefix)
    {
        var items = users.Select(u => new { completionId = $"{prefix}-{u}", userId = u, contentId = Content, completedAt = Iso(DateTimeOffset.UtcNow), answer = 80 });
        var response = await http.PostAsJsonAsync("/completions/bulk", new { items });
        Assert.Equal(207, (int)response.StatusCode);
        var results = (await response.Content.ReadFromJsonAsync<JsonNode>())!["results"]!.AsArray();
        Assert.All(results, r => Assert.Equal(200, r!["status"]!.GetValue<int>()));
    }

    private static async Task<JsonNode> List(HttpClient http, string assignmentId, string query)
    {
        var response = await http.GetAsync($"/assignments/{assignmentId}/enrolments?{query}");
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonNode>())!;
    }

    private static async Task<JsonNode> Operation(HttpClient http, HttpResponseMessage accepted)
    {
        var body = await accepted.Content.ReadFromJsonAsync<JsonNode>() ?? throw new InvalidOperationException("no body");
        Assert.True(accepted.IsSuccessStatusCode, body.ToJsonString());
        var href = body["operation"]!["href"]!.GetValue<string>();
        await Until(async () => (await http.GetFromJsonAsync<JsonNode>(href))!["status"]!.GetValue<string>() == "completed", $"operation {href} completed");
        return body;
    }

    private static async Task Until(Func<Task<bool>> condition, string what)
    {
        var limit = DateTime.UtcNow.AddSeconds(60);
        while (!await condition())
        {
            if (DateTime.UtcNow > limit) throw new Xunit.Sdk.XunitException($"Timed out waiting for: {what}");
            await Task.Delay(250);
        }
    }

    private static string Iso(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'");

    private static string FindRoot()
    {
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "Enrolment.EventSourced.sln"))) root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("repository root not found");
        return root;
    }

    /// <summary>The service on a real port (a browser cannot reach the in-memory test server), configured as AppFixture's hosts.</summary>
    private sealed class KestrelService : WebApplicationFactory<Program>
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            builder.UseEnvironment("Development");
            builder.UseSetting("ConnectionStrings:Enrolment", AppFixture.ConnectionString);
            builder.UseSetting("Transitions:Enabled", "true");
            builder.UseSetting("Transitions:PollInterval", "00:00:00.200");
            builder.UseSetting("Webhooks:Enabled", "false");
            builder.UseSetting("Pages:Root", Path.Combine(Root, "src", "Enrolment.Api", "wwwroot", "app"));
            builder.UseSetting("Projections:DaemonMode", "Solo");
            builder.ConfigureServices(services => services.RunWolverineInSoloMode());
        }
    }
}
