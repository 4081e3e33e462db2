using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Npgsql;

namespace Enrolment.Benchmarks;

/// <summary>
/// The summaries' lag after a burst of conflicts (issue #32): every completion of the burst is sent twice at once (the
/// same completionId, as an integrator's retry racing its first try), so one of each pair loses and its append rolls
/// back, leaving a hole in the event sequence. Measured: from the last answer until the summary projection has processed
/// every committed event (what /metrics calls enrolment_summary_lag = 0).
/// </summary>
public static class Conflicts
{
    public static async Task<int> Run(Options options)
    {
        var tenant = options.Get("tenant");
        var pairs = options.Int("pairs", 200);
        await using var dataSource = NpgsqlDataSource.Create(options.Get("connection"));
        var targets = new List<(string User, string Content)>();
        await using (var pick = dataSource.CreateCommand(
            "select user_id, data ->> 'primaryContentId' from enrolment.mt_doc_enrolment where tenant_id = $1 and status = 'Open' order by id limit $2"))
        {
            pick.Parameters.Add(new NpgsqlParameter { Value = tenant });
            pick.Parameters.Add(new NpgsqlParameter { Value = pairs });
            await using var reader = await pick.ExecuteReaderAsync();
            while (await reader.ReadAsync()) targets.Add((reader.GetString(0), reader.GetString(1)));
        }

        using var http = new HttpClient { BaseAddress = new Uri(options.Get("url")), Timeout = TimeSpan.FromMinutes(1) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{tenant}:{options.Get("secret")}")));
        var label = $"conflict-{DateTime.UtcNow:HHmmss}";
        var answers = new Dictionary<int, int>();
        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(targets.Select((t, i) => (t, i)), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (x, ct) =>
        {
            var body = new { completionId = $"{label}-{x.i}", userId = x.t.User, contentId = x.t.Content, completedAt = DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'") };
            var twice = await Task.WhenAll(http.PostAsJsonAsync("/completions", body, ct), http.PostAsJsonAsync("/completions", body, ct));
            lock (answers)
                foreach (var r in twice) answers[(int)r.StatusCode] = answers.GetValueOrDefault((int)r.StatusCode) + 1;
        });
        var burstSeconds = clock.Elapsed.TotalSeconds;

        var lastAnswer = Stopwatch.StartNew();
        long lag = -1;
        while (lastAnswer.Elapsed < TimeSpan.FromMinutes(5))
        {
            await using var command = dataSource.CreateCommand(
                "select greatest(0, coalesce((select max(seq_id) from enrolment.mt_events), 0) - coalesce((select last_seq_id from enrolment.mt_event_progression where name = $1), 0))");
            command.Parameters.Add(new NpgsqlParameter { Value = Enrolment.Api.Features.Summaries.SummaryProjection.Name + ":All" });
            lag = (long)(await command.ExecuteScalarAsync())!;
            if (lag == 0) break;
            await Task.Delay(50);
        }
        // Marten's gap fillers: one for each sequence number a rolled-back append drew (in the whole store).
        await using var holes = dataSource.CreateCommand("select count(*) from enrolment.mt_events where type = $1");
        holes.Parameters.Add(new NpgsqlParameter { Value = Enrolment.Api.Features.Audit.AuditChainSql.GapFillerType });
        Console.Out.WriteLine(JsonSerializer.Serialize(new
        {
            pairs = targets.Count, answers = answers.ToDictionary(a => a.Key.ToString(), a => a.Value), burstSeconds,
            caughtUp = lag == 0, lagSeconds = lastAnswer.Elapsed.TotalSeconds, tombstones = (long)(await holes.ExecuteScalarAsync())!,
        }));
        return lag == 0 ? 0 : 1;
    }
}
