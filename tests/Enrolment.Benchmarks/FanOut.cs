using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Npgsql;
using NpgsqlTypes;

namespace Enrolment.Benchmarks;

/// <summary>
/// Comparison 5: assigning an audience of N users through the service (HTTP: set the members, create the
/// assignment, poll its fan-out operation until completed, then until every enrolment is readable) against a raw
/// binary COPY of the same number of event rows and document rows, shaped like the service's own.
/// </summary>
public static class FanOut
{
    public static async Task<int> Service(Options options)
    {
        var count = options.Int("count", 100_000);
        var tenant = options.Get("tenant");
        using var http = new HttpClient { BaseAddress = new Uri(options.Get("url")), Timeout = TimeSpan.FromMinutes(5) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{tenant}:{options.Get("secret")}")));
        var label = $"fanout-{DateTime.UtcNow:HHmmss}";

        (await http.PutAsJsonAsync($"/content/{label}", new { title = "Fan-out benchmark" })).EnsureSuccessStatusCode();
        var members = await http.PutAsJsonAsync($"/audiences/{label}/members", new { userIds = Enumerable.Range(0, count).Select(i => $"{label}-u{i}").ToArray() });
        await Ensure(members, "set the audience's members");
        // The audience has no assignment yet, so setting its members changes no enrolment; wait for it anyway.
        await WaitForOperation(http, await members.Content.ReadFromJsonAsync<JsonObject>());

        // Opened (and warmed) before the clock starts, so the readability check measures the data, not the driver.
        await using var dataSource = NpgsqlDataSource.Create(options.Get("connection"));
        await using (var warm = dataSource.CreateCommand("select 1")) await warm.ExecuteScalarAsync();

        var clock = Stopwatch.StartNew();
        var created = await http.PostAsJsonAsync("/assignments", new { audienceId = label, primaryContentId = label, completionPeriod = "P30D" });
        await Ensure(created, "create the assignment");
        var body = await created.Content.ReadFromJsonAsync<JsonObject>();
        var assignmentId = body!["assignment"]!["id"]!.GetValue<string>();
        await WaitForOperation(http, body);
        var operationSeconds = clock.Elapsed.TotalSeconds;

        // End to end: until a list of the assignment's enrolments has them all (the read model is inline, so this
        // should be immediate; measured rather than assumed).
        long readable = 0;
        while (clock.Elapsed < TimeSpan.FromMinutes(30))
        {
            await using var cmd = dataSource.CreateCommand("select count(*) from enrolment.mt_doc_enrolment where tenant_id = $1 and assignment_id = $2");
            cmd.Parameters.Add(new NpgsqlParameter { Value = tenant });
            cmd.Parameters.Add(new NpgsqlParameter { Value = Guid.Parse(assignmentId) });
            readable = (long)(await cmd.ExecuteScalarAsync())!;
            if (readable >= count) break;
            await Task.Delay(200);
        }
        var readableSeconds = clock.Elapsed.TotalSeconds;
        Console.Out.WriteLine(JsonSerializer.Serialize(new
        {
            count, readable, operationSeconds, readableSeconds, enrolmentsPerSecond = readable / readableSeconds, assignmentId,
        }));
        return readable >= count ? 0 : 1;
    }

    public static async Task<int> Baseline(Options options)
    {
        var count = options.Int("count", 100_000);
        await using var dataSource = NpgsqlDataSource.Create(options.Get("connection"));
        // Real rows of the service to copy the shape and size from.
        string sampleEvent, sampleDoc;
        await using (var cmd = dataSource.CreateCommand("""
            select (select data::text from enrolment.mt_events where type = 'enrolment_assigned' limit 1),
                   (select data::text from enrolment.mt_doc_enrolment where status = 'Open' limit 1)
            """))
        await using (var reader = await cmd.ExecuteReaderAsync())
        {
            await reader.ReadAsync();
            sampleEvent = reader.GetString(0);
            sampleDoc = reader.GetString(1);
        }
        await using (var cmd = dataSource.CreateCommand("""
            create schema if not exists bench_baseline;
            drop table if exists bench_baseline.fanout_events;
            drop table if exists bench_baseline.fanout_docs;
            create table bench_baseline.fanout_events (like enrolment.mt_events including defaults);
            alter table bench_baseline.fanout_events add primary key (seq_id);
            create table bench_baseline.fanout_docs (like enrolment.mt_doc_enrolment including defaults);
            alter table bench_baseline.fanout_docs add primary key (tenant_id, id);
            """))
            await cmd.ExecuteNonQueryAsync();

        var clock = Stopwatch.StartNew();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        var tenant = "eu-west-1_FanoutBaseline";
        var assignment = Guid.NewGuid();
        var ids = Enumerable.Range(0, count).Select(_ => Guid.NewGuid()).ToArray();
        await using (var events = await connection.BeginBinaryImportAsync(
            "copy bench_baseline.fanout_events (seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type) from stdin (format binary)"))
        {
            for (var i = 0; i < count; i++)
            {
                await events.StartRowAsync();
                await events.WriteAsync((long)i + 1, NpgsqlDbType.Bigint);
                await events.WriteAsync(Guid.NewGuid(), NpgsqlDbType.Uuid);
                await events.WriteAsync(ids[i], NpgsqlDbType.Uuid);
                await events.WriteAsync(1L, NpgsqlDbType.Bigint);
                await events.WriteAsync(sampleEvent.Replace("\"userId\": \"", $"\"userId\": \"f{i}-"), NpgsqlDbType.Jsonb);
                await events.WriteAsync("enrolment_assigned", NpgsqlDbType.Varchar);
                await events.WriteAsync(DateTime.UtcNow, NpgsqlDbType.TimestampTz);
                await events.WriteAsync(tenant, NpgsqlDbType.Varchar);
                await events.WriteAsync("Enrolment.Domain.EnrolmentAssigned, Enrolment.Domain", NpgsqlDbType.Varchar);
            }
            await events.CompleteAsync();
        }
        await using (var docs = await connection.BeginBinaryImportAsync(
            "copy bench_baseline.fanout_docs (tenant_id, id, data, mt_dotnet_type, mt_version, assignment_id, user_id, status) from stdin (format binary)"))
        {
            for (var i = 0; i < count; i++)
            {
                await docs.StartRowAsync();
                await docs.WriteAsync(tenant, NpgsqlDbType.Varchar);
                await docs.WriteAsync(ids[i], NpgsqlDbType.Uuid);
                await docs.WriteAsync(sampleDoc, NpgsqlDbType.Jsonb);
                await docs.WriteAsync("Enrolment.Domain.EnrolmentState", NpgsqlDbType.Varchar);
                await docs.WriteAsync(1L, NpgsqlDbType.Bigint);
                await docs.WriteAsync(assignment, NpgsqlDbType.Uuid);
                await docs.WriteAsync($"f{i}", NpgsqlDbType.Varchar);
                await docs.WriteAsync("Open", NpgsqlDbType.Varchar);
            }
            await docs.CompleteAsync();
        }
        await tx.CommitAsync();
        var seconds = clock.Elapsed.TotalSeconds;
        Console.Out.WriteLine(JsonSerializer.Serialize(new { count, seconds, enrolmentsPerSecond = count / seconds }));
        return 0;
    }

    private static async Task WaitForOperation(HttpClient http, JsonObject? accepted)
    {
        var href = accepted?["operation"]?["href"]?.GetValue<string>();
        if (href is null) return;
        var started = Stopwatch.StartNew();
        while (started.Elapsed < TimeSpan.FromMinutes(30))
        {
            var status = await http.GetFromJsonAsync<JsonObject>(href);
            if (status?["status"]?.GetValue<string>() == "completed") return;
            await Task.Delay(250);
        }
        throw new TimeoutException($"operation {href} did not complete within 30 minutes");
    }

    private static async Task Ensure(HttpResponseMessage response, string what)
    {
        if (response.IsSuccessStatusCode) return;
        throw new InvalidOperationException($"Could not {what}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }
}
