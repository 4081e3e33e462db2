using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Enrolment.Benchmarks;

/// <summary>
/// The pages' first load of an assignment (issue #32: it must not grow with the assignment's history): the requests
/// src/Enrolment.Pages/src/assignment.ts makes on open, in its order: the assignment, then its summary and the first
/// page of overdue and open people at once, then the change feed from now and its first poll. Timed from the first
/// request to the last answer, one load after the other; every answer must be 2xx.
/// </summary>
public static class FirstLoad
{
    public static async Task<int> Run(Options options)
    {
        var tenant = options.Get("tenant");
        var assignment = options.Get("assignment");
        var loads = options.Int("loads", 50);
        using var http = new HttpClient { BaseAddress = new Uri(options.Get("url")), Timeout = TimeSpan.FromMinutes(1) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{tenant}:{options.Get("secret")}")));

        async Task<JsonElement> Get(string path)
        {
            using var response = await http.GetAsync(path);
            if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"GET {path} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
        }

        var changesRead = 0;
        var seconds = new List<double>(loads);
        // One warm-up load (connections, the service's first use of each endpoint), not counted.
        for (var i = -1; i < loads; i++)
        {
            var clock = Stopwatch.StartNew();
            await Get($"/assignments/{assignment}");
            await Task.WhenAll(Get($"/assignments/{assignment}/summary"), Get($"/assignments/{assignment}/enrolments?status=overdue,open&limit=25"));
            var now = await Get($"/changes?assignmentId={assignment}&after=now&limit=1000");
            var poll = await Get($"/changes?assignmentId={assignment}&after={Uri.EscapeDataString(now.GetProperty("nextCursor").GetString()!)}&limit=1000");
            clock.Stop();
            if (i < 0) continue;
            seconds.Add(clock.Elapsed.TotalMilliseconds);
            changesRead += now.GetProperty("items").GetArrayLength() + poll.GetProperty("items").GetArrayLength();
        }
        seconds.Sort();
        double Percentile(double p) => seconds[Math.Min(seconds.Count - 1, (int)Math.Ceiling(p * seconds.Count) - 1)];
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            loads,
            p50 = Math.Round(Percentile(0.5), 2),
            p99 = Math.Round(Percentile(0.99), 2),
            max = Math.Round(seconds[^1], 2),
            changesRead,
        }));
        return 0;
    }
}
