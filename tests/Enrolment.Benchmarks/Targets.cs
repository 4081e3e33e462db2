using System.Text;
using System.Text.Json;
using Npgsql;

namespace Enrolment.Benchmarks;

/// <summary>
/// The request lists wrk rotates through (build/bench/rotate.lua), one request a line:
/// method TAB path TAB Authorization header TAB body. Ids are sampled from the seeded rows, so every request hits
/// a real enrolment and successive requests hit different rows (no single hot row).
/// </summary>
public static class Targets
{
    public static async Task<int> Run(Options options)
    {
        var outDir = options.Get("out");
        Directory.CreateDirectory(outDir);
        var sample = options.Int("sample", 50_000);
        var smallLabel = options.Get("small-label", "");
        var secrets = SeededSecrets(options);
        string Auth(string tenant) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{tenant}:{secrets[tenant]}"));

        await using var dataSource = NpgsqlDataSource.Create(options.Get("connection"));

        // Reads over the small subset (the first 10,000 seeded) and over everything.
        if (smallLabel != "")
            await Write(dataSource, Path.Combine(outDir, "reads-small.tsv"),
                "select tenant_id, assignment_id, id from enrolment.mt_doc_enrolment where tenant_id like $1 order by random() limit $2",
                [$"eu-west-1\\_{smallLabel}%", sample], r => $"GET\t/assignments/{r.GetGuid(1)}/enrolments/{r.GetGuid(2)}\t{Auth(r.GetString(0))}\t");
        await Write(dataSource, Path.Combine(outDir, "reads-full.tsv"),
            "select tenant_id, assignment_id, id from enrolment.mt_doc_enrolment order by random() limit $1",
            [sample], r => $"GET\t/assignments/{r.GetGuid(1)}/enrolments/{r.GetGuid(2)}\t{Auth(r.GetString(0))}\t");

        // List pages: status filter, and a cursor taken from a random row (any id is a valid keyset position).
        await Write(dataSource, Path.Combine(outDir, "list-full.tsv"),
            "select tenant_id, assignment_id, id from enrolment.mt_doc_enrolment order by random() limit $1",
            [Math.Min(sample, 20_000)], r => $"GET\t/assignments/{r.GetGuid(1)}/enrolments?status=open&limit=100&cursor={Uri.EscapeDataString(EncodeCursor(r.GetGuid(2)))}\t{Auth(r.GetString(0))}\t");

        // Completions: one open enrolment each, never the same twice; the baseline gets copies of those rows.
        var completions = options.Int("completions", 60_000);
        var contentId = options.Get("content", "bench-content");
        var at = DateTimeOffset.UtcNow.AddMinutes(-1).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'");
        await using (var cmd = dataSource.CreateCommand($"""
            create schema if not exists bench_baseline;
            drop table if exists bench_baseline.events;
            drop table if exists bench_baseline.docs;
            create table bench_baseline.events (seq_id bigserial primary key, tenant_id varchar not null, stream_id uuid not null,
                type varchar not null, data jsonb not null, timestamp timestamptz not null default now());
            create table bench_baseline.docs as
                select * from enrolment.mt_doc_enrolment where status = 'Open' order by random() limit {completions};
            alter table bench_baseline.docs add primary key (tenant_id, id);
            analyze bench_baseline.docs;
            """))
            await cmd.ExecuteNonQueryAsync();
        var n = 0;
        await Write(dataSource, Path.Combine(outDir, "completions.tsv"),
            "select tenant_id, user_id, id from bench_baseline.docs order by random()",
            [], r =>
            {
                var body = JsonSerializer.Serialize(new Baseline.CompletionBody($"bench-{Guid.NewGuid():N}", r.GetString(1), contentId, at, 90 + n++ % 10, r.GetGuid(2)), JsonSerializerOptions.Web);
                return $"POST\t/completions\t{Auth(r.GetString(0))}\t{body}";
            });
        Console.Error.WriteLine($"[targets] written to {outDir}");
        return 0;
    }

    /// <summary>Each seeded tenant's secret, from the seed command's JSON summaries (--seed, repeatable).</summary>
    internal static Dictionary<string, string> SeededSecrets(Options options)
    {
        var secrets = new Dictionary<string, string>();
        foreach (var seedFile in options.All("seed"))
        {
            using var doc = JsonDocument.Parse(File.ReadAllLines(seedFile).Last(l => l.StartsWith('{')));
            foreach (var t in doc.RootElement.GetProperty("tenants").EnumerateArray())
                secrets[t.GetProperty("tenantId").GetString()!] = t.GetProperty("secret").GetString()!;
        }
        return secrets;
    }

    public static async Task<int> CountCompletions(Options options)
    {
        await using var dataSource = NpgsqlDataSource.Create(options.Get("connection"));
        await using var cmd = dataSource.CreateCommand("""
            select (select count(*) from enrolment.mt_events where type = 'enrolment_completed'),
                   (select count(*) from enrolment.mt_doc_completionrecord where jsonb_array_length(data->'result'->'completed') > 0),
                   (select count(*) from enrolment.mt_doc_enrolment where status = 'Complete'),
                   (select count(*) from bench_baseline.events),
                   (select count(*) from bench_baseline.docs where status = 'Complete')
            """);
        await using var r = await cmd.ExecuteReaderAsync();
        await r.ReadAsync();
        Console.Out.WriteLine(JsonSerializer.Serialize(new
        {
            completedEvents = r.GetInt64(0), completionRecordsThatCompleted = r.GetInt64(1), completeViews = r.GetInt64(2),
            baselineEvents = r.GetInt64(3), baselineCompleteDocs = r.GetInt64(4),
        }));
        return 0;
    }

    private static async Task Write(NpgsqlDataSource dataSource, string path, string sql, object[] parameters, Func<NpgsqlDataReader, string> line)
    {
        await using var cmd = dataSource.CreateCommand(sql);
        foreach (var p in parameters) cmd.Parameters.Add(new NpgsqlParameter { Value = p });
        await using var reader = await cmd.ExecuteReaderAsync();
        await using var file = new StreamWriter(path);
        var count = 0;
        while (await reader.ReadAsync()) { await file.WriteLineAsync(line(reader)); count++; }
        Console.Error.WriteLine($"[targets] {Path.GetFileName(path)}: {count} requests");
    }

    /// <summary>
    /// The service's cursor (Marten's keyset cursor): "v1:" and the base64 of a JSON array of the last row's sort
    /// keys, here the enrolment id alone. Any id is a valid position, so list requests can start anywhere.
    /// </summary>
    /// <summary>A cursor as the service issues it (EnrolmentLists.Cursors): base64url of version byte 2 and the id, big-endian.</summary>
    public static string EncodeCursor(Guid id)
    {
        var bytes = new byte[17];
        bytes[0] = 2;
        id.TryWriteBytes(bytes.AsSpan(1), bigEndian: true, out _);
        return System.Buffers.Text.Base64Url.EncodeToString(bytes);
    }

    /// <summary>The service's cursor (base64url of a version byte and the last id, big-endian), read the same way by the baseline.</summary>
    public static Guid DecodeCursor(string cursor) =>
        new(System.Buffers.Text.Base64Url.DecodeFromChars(cursor).AsSpan(1, 16), bigEndian: true);
}
