using System.Text;
using System.Text.Json;
using Npgsql;

namespace Enrolment.Benchmarks;

/// <summary>
/// What this machine can do at all for the same requests: a bare ASP.NET minimal API reading and writing the same
/// PostgreSQL rows with Npgsql, with no authentication check, no Marten, no Wolverine, no (de)serialisation of the
/// stored JSON. The tenant is taken from the Basic username unverified, so the same request lists drive both sides.
/// </summary>
public static class Baseline
{
    public static async Task<int> Run(Options options)
    {
        var port = options.Int("port", 5091);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
        await using var dataSource = NpgsqlDataSource.Create(options.Get("connection"));
        var app = builder.Build();

        app.MapGet("/health/live", () => "ok");

        // (1, 2) one enrolment by primary key, the stored JSON as it is.
        app.MapGet("/assignments/{assignmentId}/enrolments/{enrolmentId:guid}", async (Guid enrolmentId, HttpContext ctx) =>
        {
            await using var cmd = dataSource.CreateCommand("select data from enrolment.mt_doc_enrolment where tenant_id = $1 and id = $2");
            cmd.Parameters.Add(new NpgsqlParameter { Value = Tenant(ctx) });
            cmd.Parameters.Add(new NpgsqlParameter { Value = enrolmentId });
            var json = (string?)await cmd.ExecuteScalarAsync(ctx.RequestAborted);
            if (json is null) { ctx.Response.StatusCode = 404; return; }
            ctx.Response.ContentType = "application/json";
            await ctx.Response.WriteAsync(json, ctx.RequestAborted);
        });

        // (3) a list page: the same filter and keyset as the service's query, rows concatenated as stored.
        app.MapGet("/assignments/{assignmentId:guid}/enrolments", async (Guid assignmentId, string status, int? limit, string? cursor, HttpContext ctx) =>
        {
            var take = limit ?? 100;
            var after = cursor is null ? Guid.Empty : Targets.DecodeCursor(cursor);
            await using var cmd = dataSource.CreateCommand(
                "select id, data from enrolment.mt_doc_enrolment where tenant_id = $1 and assignment_id = $2 and status = initcap($3) and id > $4 order by id limit $5");
            cmd.Parameters.Add(new NpgsqlParameter { Value = Tenant(ctx) });
            cmd.Parameters.Add(new NpgsqlParameter { Value = assignmentId });
            cmd.Parameters.Add(new NpgsqlParameter { Value = status });
            cmd.Parameters.Add(new NpgsqlParameter { Value = after });
            cmd.Parameters.Add(new NpgsqlParameter { Value = take + 1 });
            var body = new StringBuilder("{\"items\":[");
            var count = 0;
            Guid last = Guid.Empty;
            await using (var reader = await cmd.ExecuteReaderAsync(ctx.RequestAborted))
            {
                while (await reader.ReadAsync(ctx.RequestAborted))
                {
                    if (++count > take) break;
                    if (count > 1) body.Append(',');
                    last = reader.GetGuid(0);
                    body.Append(reader.GetString(1));
                }
            }
            body.Append("],\"nextCursor\":").Append(count > take ? $"\"{Targets.EncodeCursor(last)}\"" : "null").Append('}');
            ctx.Response.ContentType = "application/json";
            await ctx.Response.WriteAsync(body.ToString(), ctx.RequestAborted);
        });

        // (4) a completion: in one transaction, append one event row and update one document row (copies of the
        // service's rows in schema bench_baseline, made by `targets`, so the service's data stays untouched).
        app.MapPost("/completions", async (HttpContext ctx) =>
        {
            var request = await JsonSerializer.DeserializeAsync<CompletionBody>(ctx.Request.Body, JsonSerializerOptions.Web, ctx.RequestAborted)
                ?? throw new InvalidOperationException("no body");
            var tenant = Tenant(ctx);
            await using var connection = await dataSource.OpenConnectionAsync(ctx.RequestAborted);
            await using var tx = await connection.BeginTransactionAsync(ctx.RequestAborted);
            await using var batch = new NpgsqlBatch(connection, tx);
            var insert = new NpgsqlBatchCommand("insert into bench_baseline.events (tenant_id, stream_id, type, data) values ($1, $2, 'enrolment_completed', $3::jsonb)");
            insert.Parameters.Add(new NpgsqlParameter { Value = tenant });
            insert.Parameters.Add(new NpgsqlParameter { Value = request.EnrolmentId });
            insert.Parameters.Add(new NpgsqlParameter { Value = JsonSerializer.Serialize(request, JsonSerializerOptions.Web) });
            var update = new NpgsqlBatchCommand(
                "update bench_baseline.docs set data = jsonb_set(jsonb_set(data, '{status}', '\"complete\"'), '{lastCompletedAt}', to_jsonb($3::text)), status = 'Complete', mt_last_modified = now() where tenant_id = $1 and id = $2");
            update.Parameters.Add(new NpgsqlParameter { Value = tenant });
            update.Parameters.Add(new NpgsqlParameter { Value = request.EnrolmentId });
            update.Parameters.Add(new NpgsqlParameter { Value = request.CompletedAt });
            batch.BatchCommands.Add(insert);
            batch.BatchCommands.Add(update);
            await batch.ExecuteNonQueryAsync(ctx.RequestAborted);
            await tx.CommitAsync(ctx.RequestAborted);
            ctx.Response.ContentType = "application/json";
            await ctx.Response.WriteAsync("{\"completed\":1}", ctx.RequestAborted);
        });

        Console.Error.WriteLine($"[baseline] listening on http://127.0.0.1:{port}");
        await app.RunAsync();
        return 0;
    }

    public sealed record CompletionBody(string CompletionId, string UserId, string ContentId, string CompletedAt, double? Answer, Guid EnrolmentId);

    private static string Tenant(HttpContext ctx)
    {
        var header = ctx.Request.Headers.Authorization.ToString();
        var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header["Basic ".Length..]));
        return decoded[..decoded.IndexOf(':')];
    }
}
