using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Npgsql;

namespace Enrolment.Reliability;

/// <summary>Everything one probe got back, headers included (the credentials scenario scans them for secrets).</summary>
public sealed record Reply(int Status, string? ContentType, string Body, IReadOnlyList<KeyValuePair<string, string>> Headers, TimeSpan Latency, string? TransportError)
{
    public bool Answered => Status != 0;
    public bool Ok => Status is >= 200 and < 300;

    public string? Header(string name) =>
        Headers.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value;

    public override string ToString() =>
        Answered ? $"{Status} {ContentType}: {(Body.Length > 300 ? Body[..300] + "…" : Body)}" : $"no answer ({TransportError})";
}

/// <summary>
/// What the hostile-input, isolation and credentials scenarios share: sending a request and keeping all of its answer,
/// judging problem documents, clients that come from a chosen address, Mimecast signing, and reading the database.
/// </summary>
public static class SecurityProbes
{
    public const string MimecastRoute = "/api/awareness-training/user/get-training-details";

    /// <summary>Sends one request; never throws for what the network or the service did (that is in the reply).</summary>
    public static async Task<Reply> Exchange(this HttpClient client, HttpRequestMessage request, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            using var response = await client.SendAsync(request, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            var headers = response.Headers.Concat(response.Content.Headers)
                .SelectMany(h => h.Value.Select(v => new KeyValuePair<string, string>(h.Key, v))).ToList();
            return new Reply((int)response.StatusCode, response.Content.Headers.ContentType?.MediaType, body, headers, clock.Elapsed, null);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            var inner = e;
            while (inner.InnerException is not null) inner = inner.InnerException;
            return new Reply(0, null, "", [], clock.Elapsed, inner.Message);
        }
        finally
        {
            request.Dispose();
        }
    }

    public static HttpRequestMessage Request(HttpMethod method, string url, System.Net.Http.Headers.AuthenticationHeaderValue? auth, string? json = null)
    {
        var request = new HttpRequestMessage(method, url);
        if (auth is not null) request.Headers.Authorization = auth;
        if (json is not null) request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        return request;
    }

    /// <summary>
    /// Null when the reply is an RFC 9457 problem document (application/problem+json, a JSON object whose status is the
    /// HTTP status and with a title); otherwise why it is not.
    /// </summary>
    public static string? WhyNotAProblem(Reply reply)
    {
        if (reply.ContentType != "application/problem+json") return $"content type '{reply.ContentType}'";
        JsonNode? json;
        try { json = JsonNode.Parse(reply.Body); }
        catch (JsonException) { return "a body that is not JSON"; }
        if (json is not JsonObject problem) return "a body that is not a JSON object";
        if (problem["status"] is not JsonValue status || !status.TryGetValue(out int value) || value != reply.Status) return "no matching status member";
        if (problem["title"] is not JsonValue title || !title.TryGetValue(out string? text) || string.IsNullOrWhiteSpace(text)) return "no title";
        return null;
    }

    /// <summary>
    /// The n-th client address of a scenario: 127.{scenario}.x.y. The service counts failed authentications per
    /// address, so a scenario that fails on purpose spreads over addresses, and each scenario has its own range.
    /// </summary>
    public static IPAddress Address(int scenario, int n) =>
        new([127, (byte)scenario, (byte)(1 + n / 250 % 250), (byte)(1 + n % 250)]);

    /// <summary>
    /// A client whose requests come from this address: the runner's (in-process, the test host sets the connection's
    /// remote address), else a socket bound to that loopback address before it connects to the service.
    /// </summary>
    public static HttpClient ClientFrom(this ScenarioContext context, IPAddress address)
    {
        if (context.NewClientFrom is { } fromRunner) return fromRunner(address);
        var template = context.NewClient();
        var baseAddress = context.BaseAddress ?? template.BaseAddress ?? throw new InvalidOperationException("No base address for the service.");
        if (!IPAddress.TryParse(baseAddress.Host, out var serverIp) || !IPAddress.IsLoopback(serverIp) || serverIp.AddressFamily != AddressFamily.InterNetwork)
            return template; // a non-loopback service cannot be reached from a chosen loopback address; failures then share one address
        template.Dispose();
        var handler = new SocketsHttpHandler
        {
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            // Header values go out as UTF-8 bytes, as a hostile client would send them (HttpClient refuses non-ASCII by default).
            RequestHeaderEncodingSelector = (_, _) => Encoding.UTF8,
            ConnectCallback = async (connect, token) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    socket.Bind(new IPEndPoint(address, 0));
                    await socket.ConnectAsync(new IPEndPoint(serverIp, connect.DnsEndPoint.Port), token);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return new HttpClient(handler) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    // ------------------------------------------------------------------------------------------------ Mimecast

    public static string MimecastDate(DateTimeOffset at) =>
        at.UtcDateTime.ToString("ddd, dd MMM yyyy HH:mm:ss", CultureInfo.InvariantCulture) + " UTC";

    /// <summary>Mimecast API 1.0 signing as their sample code does it: Base64(HMAC-SHA1(Base64Decode(secretKey), date:reqId:path:appKey)).</summary>
    public static string MimecastSignature(string secretKey, string date, string requestId, string appKey, string path = MimecastRoute) =>
        Convert.ToBase64String(HMACSHA1.HashData(Convert.FromBase64String(secretKey), Encoding.UTF8.GetBytes($"{date}:{requestId}:{path}:{appKey}")));

    /// <summary>A Mimecast request signed with this key set (fresh date and request id).</summary>
    public static HttpRequestMessage MimecastRequest(MimecastKeySet key, string json)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, MimecastRoute) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        var date = MimecastDate(DateTimeOffset.UtcNow);
        var requestId = Guid.NewGuid().ToString();
        request.Headers.TryAddWithoutValidation("Authorization", $"MC {key.AccessKey}:{MimecastSignature(key.SecretKey, date, requestId, key.AppKey)}");
        request.Headers.TryAddWithoutValidation("x-mc-date", date);
        request.Headers.TryAddWithoutValidation("x-mc-req-id", requestId);
        request.Headers.TryAddWithoutValidation("x-mc-app-id", key.AppId);
        return request;
    }

    // ------------------------------------------------------------------------------------------------ database

    /// <summary>Every table of the service's database outside PostgreSQL's own schemas, with its columns and their types.</summary>
    public static async Task<List<(string Schema, string Table, List<(string Column, string Type)> Columns)>> Tables(string connectionString, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        await using var command = new NpgsqlCommand("""
            select c.table_schema, c.table_name, c.column_name, c.data_type
            from information_schema.columns c
            join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name and t.table_type = 'BASE TABLE'
            where c.table_schema not in ('pg_catalog', 'information_schema') and c.table_schema not like 'pg_toast%'
            order by c.table_schema, c.table_name, c.ordinal_position
            """, connection);
        var tables = new List<(string, string, List<(string, string)>)>();
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var (schema, table) = (reader.GetString(0), reader.GetString(1));
            if (tables.Count == 0 || tables[^1].Item1 != schema || tables[^1].Item2 != table) tables.Add((schema, table, []));
            tables[^1].Item3.Add((reader.GetString(2), reader.GetString(3)));
        }
        return tables;
    }

    public static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"") + "\"";

    /// <summary>
    /// The rows of every table that belong to one tenant: where the table has a tenant_id column, its rows of that tenant;
    /// elsewhere (single-tenanted documents, Wolverine's envelope and queue tables) the rows whose text or bytes mention
    /// one of the markers (the tenant id, its Mimecast access keys). Handled incoming envelopes are left out: Wolverine keeps
    /// them a while for de-duplication and deletes them in the background, so they come and go on their own.
    /// </summary>
    public static async Task<SortedDictionary<string, long>> TenantRows(string connectionString, string tenantId, IReadOnlyCollection<string> markers, CancellationToken ct)
    {
        var counts = new SortedDictionary<string, long>(StringComparer.Ordinal);
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        foreach (var (schema, table, columns) in await Tables(connectionString, ct))
        {
            // The audit checkpoints are the service's own clock work (one a minute while a tenant is written to), not a
            // row any request wrote: counting them reported "unexplained" rows whenever a checkpoint fell in the run.
            if (table == "mt_doc_auditcheckpoint") continue;
            // The one writer's lock rows: one per user (or audience, assignment) ever written for (the first completion of a user writes it, the
            // next ones none), so their count follows the users, not the accepted requests. A refused request cannot
            // write one: its transaction rolls back with everything else.
            if (table == "enrolment_locks") continue;
            var name = $"{Quote(schema)}.{Quote(table)}";
            await using var command = new NpgsqlCommand { Connection = connection };
            if (columns.Any(c => c.Column == "tenant_id"))
            {
                command.CommandText = $"select count(*) from {name} where tenant_id = $1";
                command.Parameters.Add(new NpgsqlParameter { Value = tenantId });
            }
            else
            {
                var conditions = new List<string>();
                for (var i = 0; i < markers.Count; i++)
                {
                    conditions.Add($"strpos(t::text, ${i + 1}) > 0");
                    conditions.AddRange(columns.Where(c => c.Type == "bytea").Select(c => $"position(convert_to(${i + 1}, 'UTF8') in t.{Quote(c.Column)}) > 0"));
                }
                foreach (var marker in markers) command.Parameters.Add(new NpgsqlParameter { Value = marker });
                var handled = table == "wolverine_incoming_envelopes" ? " and t.status <> 'Handled'" : "";
                command.CommandText = $"select count(*) from {name} t where ({string.Join(" or ", conditions)}){handled}";
            }
            counts[$"{schema}.{table}"] = (long)(await command.ExecuteScalarAsync(ct))!;
        }
        return counts;
    }

    /// <summary>
    /// The tenant's rows once they stop changing (fan-outs and their clean-up done, the asynchronous projections caught
    /// up with every committed event): two readings half a second apart that agree. Without waiting for the projections,
    /// the summaries the daemon wrote for earlier requests were counted against whichever request came next. Fails after
    /// 30 s, since nothing else should write to the tenant while a scenario counts its rows.
    /// <para>
    /// The projections are asked first, the rows read after: caught up at that moment means every event committed before
    /// it has its summaries committed too, so the reading that follows holds them. Read the other way round, a daemon
    /// batch committing between the two counted as caught up a reading taken without its rows, and the next request was
    /// charged with them (the hostile scenario's calibration: +6 standings and +5 summaries per "Content" request).
    /// </para>
    /// </summary>
    public static async Task<SortedDictionary<string, long>> QuietTenantRows(string connectionString, string tenantId, IReadOnlyCollection<string> markers, CancellationToken ct)
    {
        var last = await TenantRows(connectionString, tenantId, markers, ct);
        for (var i = 0; i < 60; i++)
        {
            await Task.Delay(500, ct);
            var caughtUp = await ProjectionsCaughtUp(connectionString, ct);
            var now = await TenantRows(connectionString, tenantId, markers, ct);
            if (caughtUp && Difference(last, now).Count == 0) return now;
            last = now;
        }
        throw new TimeoutException($"The rows of tenant {tenantId} kept changing for 30 s (or the asynchronous projections did not catch up).");
    }

    /// <summary>
    /// Every asynchronous projection has processed every committed event (true when there are none). Projection shards are
    /// named "Projection:Shard"; the daemon's own bookkeeping rows (HighWaterMark, HighWaterStuckGap, ...) are not projections.
    /// </summary>
    private static async Task<bool> ProjectionsCaughtUp(string connectionString, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        await using var command = new NpgsqlCommand("""
            select coalesce((select max(seq_id) from enrolment.mt_events), 0)
                <= coalesce((select min(last_seq_id) from enrolment.mt_event_progression where name like '%:%'), 9223372036854775807)
            """, connection);
        return (bool)(await command.ExecuteScalarAsync(ct))!;
    }

    /// <summary>after − before, per table, only where they differ.</summary>
    public static SortedDictionary<string, long> Difference(IReadOnlyDictionary<string, long> before, IReadOnlyDictionary<string, long> after)
    {
        var diff = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var table in before.Keys.Union(after.Keys))
        {
            var d = after.GetValueOrDefault(table) - before.GetValueOrDefault(table);
            if (d != 0) diff[table] = d;
        }
        return diff;
    }

    public static string Describe(IReadOnlyDictionary<string, long> diff) =>
        diff.Count == 0 ? "none" : string.Join(", ", diff.Select(d => $"{d.Key} {(d.Value > 0 ? "+" : "")}{d.Value}"));

    // ------------------------------------------------------------------------------------------------ figures

    public static string Count(long n) => n.ToString("N0", CultureInfo.InvariantCulture);

    public static string ByStatus(IEnumerable<int> statuses) =>
        string.Join(", ", statuses.GroupBy(s => s).OrderBy(g => g.Key).Select(g => $"{(g.Key == 0 ? "no answer" : g.Key.ToString(CultureInfo.InvariantCulture))}: {Count(g.Count())}"));

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>Runs the work items with this many in flight at once.</summary>
    public static async Task ForEachConcurrently<T>(IEnumerable<T> items, int concurrency, Func<T, Task> work, CancellationToken ct)
    {
        using var gate = new SemaphoreSlim(concurrency);
        var running = new List<Task>();
        foreach (var item in items)
        {
            await gate.WaitAsync(ct);
            running.Add(Task.Run(async () => { try { await work(item); } finally { gate.Release(); } }, ct));
        }
        await Task.WhenAll(running);
    }
}
