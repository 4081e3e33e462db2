using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Alba;
using Microsoft.AspNetCore.Http;

namespace Enrolment.Api.Tests;

/// <summary>What one request answered: status, headers and the body as text (parsed on demand).</summary>
public sealed class ApiResponse(int status, IHeaderDictionary headers, string body)
{
    public int Status { get; } = status;
    public IHeaderDictionary Headers { get; } = headers;
    public string Body { get; } = body;
    public string? ContentType => Headers.ContentType.ToString() is { Length: > 0 } c ? c : null;

    private JsonNode? json;
    public JsonNode Json => json ??= JsonNode.Parse(Body) ?? throw new InvalidOperationException("The body is JSON null.");

    public override string ToString() => $"{Status} {ContentType}: {(Body.Length > 2000 ? Body[..2000] + "…" : Body)}";
}

/// <summary>Raw requests through the Alba host: never asserts a status by itself, so tests assert exactly what they mean.</summary>
public static class Scenarios
{
    public static readonly Regex InstantFormat = new(@"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$", RegexOptions.CultureInvariant);

    public static string ToJson(object body) => JsonSerializer.Serialize(body, JsonSerializerOptions.Web);

    public static async Task<ApiResponse> Send(this IAlbaHost host, HttpMethod method, string url, string? authorization,
        string? rawJson = null, IPAddress? clientIp = null)
    {
        var result = await host.Scenario(s =>
        {
            switch (method.Method)
            {
                case "GET": s.Get.Url(url); break;
                case "DELETE": s.Delete.Url(url); break;
                case "POST": if (rawJson is null) s.Post.Url(url); else s.Post.RawJson(rawJson).ToUrl(url); break;
                case "PUT": if (rawJson is null) s.Put.Url(url); else s.Put.RawJson(rawJson).ToUrl(url); break;
                default: throw new ArgumentOutOfRangeException(nameof(method), method.Method, null);
            }
            if (authorization is not null) s.WithRequestHeader("Authorization", authorization);
            if (clientIp is not null) s.ConfigureHttpContext(c => c.Connection.RemoteIpAddress = clientIp);
            s.IgnoreStatusCode();
        });
        var body = await result.ReadAsTextAsync();
        return new ApiResponse(result.Context.Response.StatusCode, result.Context.Response.Headers, body);
    }

    /// <summary>Asserts an RFC 9457 problem document with this status.</summary>
    public static JsonNode AssertProblem(this ApiResponse response, int status)
    {
        Assert.True(response.Status == status, $"Expected {status}, got {response}");
        Assert.True(response.ContentType?.StartsWith("application/problem+json", StringComparison.Ordinal) == true,
            $"Expected application/problem+json, got {response}");
        var problem = response.Json;
        Assert.Equal(status, problem["status"]!.GetValue<int>());
        Assert.False(string.IsNullOrEmpty(problem["title"]?.GetValue<string>()), $"A problem needs a title: {response}");
        return problem;
    }

    public static ApiResponse AssertStatus(this ApiResponse response, int status)
    {
        Assert.True(response.Status == status, $"Expected {status}, got {response}");
        return response;
    }

    public static string Str(this JsonNode? node, string property) =>
        node?[property]?.GetValue<string>() ?? throw new Xunit.Sdk.XunitException($"No string '{property}' in {node?.ToJsonString()}");

    public static string RandomIp() =>
        $"10.{Random.Shared.Next(1, 255)}.{Random.Shared.Next(1, 255)}.{Random.Shared.Next(1, 255)}";

    public static string RandomLetters(int n) =>
        new(Enumerable.Range(0, n).Select(_ => (char)('a' + Random.Shared.Next(26))).ToArray());
}

/// <summary>
/// The base of the scenario tests: requests with the test tenant's all-scopes secret by default, and the steps
/// the walkthrough is made of (content, audience members, assignments, waiting for a fan-out to complete).
/// </summary>
public abstract class ScenarioTest(AppFixture fixture) : ApiTest(fixture)
{
    protected string Auth => Basic(TenantId, AllSecret);

    protected Task<ApiResponse> Get(string url, string? auth = null) => Host.Send(HttpMethod.Get, url, auth ?? Auth);
    protected Task<ApiResponse> Delete(string url, string? auth = null) => Host.Send(HttpMethod.Delete, url, auth ?? Auth);
    protected Task<ApiResponse> Post(string url, object? body = null, string? auth = null) =>
        Host.Send(HttpMethod.Post, url, auth ?? Auth, body is null ? null : body as string ?? Scenarios.ToJson(body));
    protected Task<ApiResponse> Put(string url, object body, string? auth = null) =>
        Host.Send(HttpMethod.Put, url, auth ?? Auth, body as string ?? Scenarios.ToJson(body));

    protected static string Now(TimeSpan offset = default) =>
        (DateTimeOffset.UtcNow + offset).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);

    protected async Task PutContent(string contentId, string title = "Phishing basics", string? auth = null) =>
        (await Put($"/content/{contentId}", new { title }, auth)).AssertStatus(200);

    /// <summary>Replaces the audience's members and waits until their enrolments are in line.</summary>
    protected async Task<JsonNode> SetMembers(string audienceId, IEnumerable<string> userIds, string? auth = null)
    {
        var response = (await Put($"/audiences/{audienceId}/members", new { userIds = userIds.ToArray() }, auth)).AssertStatus(202);
        return await WaitForOperation(response, auth);
    }

    protected async Task<JsonNode> AddMembers(string audienceId, IEnumerable<string> userIds, string? auth = null)
    {
        var response = (await Post($"/audiences/{audienceId}/members", new { userIds = userIds.ToArray() }, auth)).AssertStatus(202);
        return await WaitForOperation(response, auth);
    }

    protected async Task<JsonNode> RemoveMember(string audienceId, string userId, string? auth = null)
    {
        var response = (await Delete($"/audiences/{audienceId}/members/{userId}", auth)).AssertStatus(202);
        return await WaitForOperation(response, auth);
    }

    /// <summary>POST /assignments (201 with Location), then waits for the audience to be enrolled. Returns the assignment id.</summary>
    protected async Task<string> CreateAssignment(object body, string? auth = null)
    {
        var response = (await Post("/assignments", body, auth)).AssertStatus(201);
        var id = response.Json["assignment"].Str("id");
        Assert.Equal($"/assignments/{id}", response.Headers.Location.ToString());
        await WaitForOperation(response, auth);
        return id;
    }

    protected Task<string> CreateAssignment(string audienceId, string contentId, string completionPeriod = "P30D", string? auth = null) =>
        CreateAssignment(new { audienceId, primaryContentId = contentId, completionPeriod }, auth);

    /// <summary>
    /// Polls the operation (its href from a 201/202 answer) until it is completed; fails after the timeout.
    /// Accepts either the operation itself or a body with an "operation" property.
    /// </summary>
    protected async Task<JsonNode> WaitForOperation(ApiResponse accepted, string? auth = null, TimeSpan? timeout = null)
    {
        var operation = accepted.Json["operation"] ?? accepted.Json;
        var href = operation.Str("href");
        Assert.Matches("^/operations/[0-9a-f-]{36}$", href);
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        while (true)
        {
            var status = (await Get(href, auth)).AssertStatus(200);
            if (status.Json.Str("status") == "completed") return status.Json;
            if (clock.Elapsed > limit)
                throw new Xunit.Sdk.XunitException($"Operation {href} did not complete within {limit}: {status.Body}");
            await Task.Delay(25);
        }
    }

    /// <summary>Reads every page of a list (limit as given) and returns all items, checking the paging contract on the way.</summary>
    protected async Task<List<JsonNode>> ListAll(string url, int limit = 500, string? auth = null)
    {
        var items = new List<JsonNode>();
        string? cursor = null;
        var separator = url.Contains('?') ? "&" : "?";
        for (var page = 0; page < 10_000; page++)
        {
            var pageUrl = $"{url}{separator}limit={limit}" + (cursor is null ? "" : $"&cursor={Uri.EscapeDataString(cursor)}");
            var response = (await Get(pageUrl, auth)).AssertStatus(200);
            var pageItems = response.Json["items"]!.AsArray().Select(i => i!).ToList();
            Assert.True(pageItems.Count <= limit, $"A page holds at most limit={limit} items, got {pageItems.Count}");
            items.AddRange(pageItems);
            cursor = response.Json["nextCursor"]?.GetValue<string>();
            if (cursor is null) return items;
            Assert.NotEmpty(pageItems);
        }
        throw new Xunit.Sdk.XunitException("Paging did not end.");
    }

    protected async Task<JsonNode> GetEnrolment(string assignmentId, string enrolmentId, string? auth = null) =>
        (await Get($"/assignments/{assignmentId}/enrolments/{enrolmentId}", auth)).AssertStatus(200).Json;

    /// <summary>The enrolment of this user in this assignment, from the list filtered by userId.</summary>
    protected async Task<JsonNode> FindEnrolment(string assignmentId, string userId, string? auth = null)
    {
        var response = (await Get($"/assignments/{assignmentId}/enrolments?userId={userId}", auth)).AssertStatus(200);
        var items = response.Json["items"]!.AsArray();
        Assert.True(items.Count == 1, $"Expected exactly one enrolment of {userId} in {assignmentId}: {response.Body}");
        return items[0]!;
    }

    protected async Task<string> EnrolmentIdFor(string assignmentId, string userId, string? auth = null) =>
        (await FindEnrolment(assignmentId, userId, auth)).Str("id");

    protected Task<ApiResponse> Complete(string completionId, string userId, string contentId, string? completedAt = null, double? answer = null, string? auth = null) =>
        Post("/completions", new { completionId, userId, contentId, completedAt = completedAt ?? Now(), answer }, auth);

    protected async Task<JsonArray> Events(string assignmentId, string enrolmentId, string? auth = null) =>
        (await Get($"/assignments/{assignmentId}/enrolments/{enrolmentId}/events", auth)).AssertStatus(200).Json.AsArray();

    /// <summary>Content c1, audience a1 with these members, an open P30D assignment: the common starting point.</summary>
    protected async Task<string> OpenAssignmentFor(params string[] userIds)
    {
        await PutContent("c1");
        await SetMembers("a1", userIds);
        return await CreateAssignment("a1", "c1");
    }
}
