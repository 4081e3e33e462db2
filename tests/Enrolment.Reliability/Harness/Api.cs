using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Enrolment.Reliability.Harness;

/// <summary>What one request answered (or that it got no answer), and how long it took.</summary>
public sealed record Outcome(int Status, string Body, string? ContentType, TimeSpan Latency, string? Error)
{
    /// <summary>The Retry-After header of the answer (a 503 or 429 says when to try again), as a delay.</summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>0 when no HTTP answer came (connection refused or reset, timeout).</summary>
    public bool Answered => Status != 0;
    public bool Ok => Status is >= 200 and < 300;
    public bool IsProblem => ContentType?.StartsWith("application/problem+json", StringComparison.Ordinal) == true;

    public JsonNode Json => JsonNode.Parse(Body) ?? throw new InvalidOperationException("The body is JSON null.");

    public override string ToString() => Answered ? $"{Status}: {(Body.Length > 300 ? Body[..300] + "…" : Body)}" : $"no answer ({Error})";
}

/// <summary>The requests the scenarios are made of, on a plain HttpClient against the running service.</summary>
public static class Api
{
    public static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);

    public static string Now(TimeSpan offset = default) =>
        (DateTimeOffset.UtcNow + offset).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    /// <summary>Sends one request and never throws for what the network or the service did: that is in the outcome.</summary>
    public static async Task<Outcome> Send(this HttpClient client, HttpMethod method, string url, AuthenticationHeaderValue? auth, object? body = null, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(method, url);
        if (auth is not null) request.Headers.Authorization = auth;
        if (body is not null)
            request.Content = new StringContent(body as string ?? JsonSerializer.Serialize(body, JsonOptions), Encoding.UTF8, "application/json");
        var clock = Stopwatch.StartNew();
        try
        {
            using var response = await client.SendAsync(request, ct);
            var text = await response.Content.ReadAsStringAsync(ct);
            var retryAfter = response.Headers.RetryAfter is { } r ? r.Delta ?? (r.Date is { } d ? d - DateTimeOffset.UtcNow : null) : null;
            return new Outcome((int)response.StatusCode, text, response.Content.Headers.ContentType?.MediaType, clock.Elapsed, null) { RetryAfter = retryAfter };
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException && !ct.IsCancellationRequested)
        {
            var error = e is TaskCanceledException ? $"no answer within {client.Timeout.TotalSeconds:0} s" : Describe(e);
            return new Outcome(0, "", null, clock.Elapsed, error);
        }
    }

    private static string Describe(Exception e)
    {
        var inner = e;
        while (inner.InnerException is not null) inner = inner.InnerException;
        return inner == e ? e.Message : $"{e.Message} ({inner.Message})";
    }

    public static Task<Outcome> Get(this HttpClient client, string url, AuthenticationHeaderValue? auth, CancellationToken ct = default) =>
        client.Send(HttpMethod.Get, url, auth, null, ct);

    public static Task<Outcome> Post(this HttpClient client, string url, AuthenticationHeaderValue? auth, object? body = null, CancellationToken ct = default) =>
        client.Send(HttpMethod.Post, url, auth, body, ct);

    public static Task<Outcome> Put(this HttpClient client, string url, AuthenticationHeaderValue? auth, object body, CancellationToken ct = default) =>
        client.Send(HttpMethod.Put, url, auth, body, ct);

    public static Task<Outcome> Delete(this HttpClient client, string url, AuthenticationHeaderValue? auth, CancellationToken ct = default) =>
        client.Send(HttpMethod.Delete, url, auth, null, ct);

    /// <summary>The outcome, or an exception naming the request when it is not the status expected (for set-up steps).</summary>
    public static Outcome Expect(this Outcome outcome, int status, string what) =>
        outcome.Status == status ? outcome : throw new InvalidOperationException($"{what}: expected {status}, got {outcome}");

    /// <summary>Polls a fan-out operation (its href) until it is completed.</summary>
    public static async Task<JsonNode> WaitForOperation(this HttpClient client, AuthenticationHeaderValue auth, string href, TimeSpan timeout, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var status = (await client.Get(href, auth, ct)).Expect(200, $"GET {href}");
            var json = status.Json;
            if (json["status"]?.GetValue<string>() == "completed") return json;
            if (clock.Elapsed > timeout) throw new TimeoutException($"Operation {href} did not complete within {timeout.TotalSeconds:0} s: {status.Body}");
            await Task.Delay(50, ct);
        }
    }

    /// <summary>The operation's href in a 201/202 answer (either the operation itself or a body with an "operation").</summary>
    public static string OperationHref(this Outcome accepted)
    {
        var json = accepted.Json;
        var operation = json["operation"] ?? json;
        return operation["href"]?.GetValue<string>() ?? throw new InvalidOperationException($"No operation href in {accepted}");
    }

    public static async Task PutContent(this HttpClient client, AuthenticationHeaderValue auth, string contentId, string title, CancellationToken ct) =>
        (await client.Put($"/content/{contentId}", auth, new { title }, ct)).Expect(200, $"PUT /content/{contentId}");

    /// <summary>Replaces the audience's members and waits until their enrolments are in line.</summary>
    public static async Task SetMembers(this HttpClient client, AuthenticationHeaderValue auth, string audienceId, IEnumerable<string> userIds, CancellationToken ct)
    {
        var accepted = (await client.Put($"/audiences/{audienceId}/members", auth, new { userIds = userIds.ToArray() }, ct)).Expect(202, $"PUT /audiences/{audienceId}/members");
        await client.WaitForOperation(auth, accepted.OperationHref(), TimeSpan.FromMinutes(2), ct);
    }

    /// <summary>Creates an assignment and waits until the audience is enrolled; returns its id.</summary>
    public static async Task<Guid> CreateAssignment(this HttpClient client, AuthenticationHeaderValue auth, object body, CancellationToken ct)
    {
        var created = (await client.Post("/assignments", auth, body, ct)).Expect(201, "POST /assignments");
        await client.WaitForOperation(auth, created.OperationHref(), TimeSpan.FromMinutes(2), ct);
        return Guid.Parse(created.Json["assignment"]!["id"]!.GetValue<string>());
    }

    /// <summary>Every enrolment of an assignment (all pages).</summary>
    public static async Task<List<JsonNode>> Enrolments(this HttpClient client, AuthenticationHeaderValue auth, Guid assignmentId, CancellationToken ct)
    {
        var items = new List<JsonNode>();
        string? cursor = null;
        do
        {
            var url = $"/assignments/{assignmentId}/enrolments?limit=500" + (cursor is null ? "" : $"&cursor={Uri.EscapeDataString(cursor)}");
            var page = (await client.Get(url, auth, ct)).Expect(200, $"GET {url}").Json;
            items.AddRange(page["items"]!.AsArray().Select(i => i!));
            cursor = page["nextCursor"]?.GetValue<string>();
        } while (cursor is not null);
        return items;
    }
}
