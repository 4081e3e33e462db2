using System.Text;
using System.Text.Json;
using Npgsql;

namespace Enrolment.Benchmarks;

/// <summary>
/// Comparison 10 (issue #31): the completion load of comparison 4 against a pool of one shard, then of two. The
/// request list is drawn from every shard's open enrolments at once and shuffled, so the load spreads over the
/// tenants (and so over the shards) as it would in production; each target's shard is not the load's concern.
/// </summary>
public static class Shards
{
    public static async Task<int> Targets(Options options)
    {
        var secrets = Enrolment.Benchmarks.Targets.SeededSecrets(options);
        string Auth(string tenant) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{tenant}:{secrets[tenant]}"));

        var completions = options.Int("completions", 60_000);
        var contentId = options.Get("content", "bench-content");
        var at = DateTimeOffset.UtcNow.AddMinutes(-1).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'");
        var rows = new List<(string Tenant, string User, Guid Id)>();
        foreach (var connection in options.All("connection"))
        {
            await using var dataSource = NpgsqlDataSource.Create(connection);
            // Each shard holds only its own tenants' rows, so the same query on each gives disjoint sets.
            await using var cmd = dataSource.CreateCommand("select tenant_id, user_id, id from enrolment.mt_doc_enrolment where status = 'Open' order by random() limit $1");
            cmd.Parameters.Add(new NpgsqlParameter { Value = completions });
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync()) rows.Add((reader.GetString(0), reader.GetString(1), reader.GetGuid(2)));
        }
        var random = new Random(31);
        var lines = rows.OrderBy(_ => random.Next()).Take(completions).Select((r, n) =>
        {
            var body = JsonSerializer.Serialize(new Baseline.CompletionBody($"bench-{Guid.NewGuid():N}", r.User, contentId, at, 90 + n % 10, r.Id), JsonSerializerOptions.Web);
            return $"POST\t/completions\t{Auth(r.Tenant)}\t{body}";
        }).ToList();
        await File.WriteAllLinesAsync(options.Get("out"), lines);
        Console.Error.WriteLine($"[shards] {Path.GetFileName(options.Get("out"))}: {lines.Count} completions over {rows.Select(r => r.Tenant).Distinct().Count()} tenants");
        return 0;
    }
}
