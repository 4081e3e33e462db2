using Enrolment.Domain;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Enrolment.Api.Features.Completions;
using Enrolment.Api.Features.Enrolments;
using Marten;
using Marten.Linq;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Enrolment.Api.Tests;

/// <summary>
/// The Thrive-compatible surface under /rest/v1 (PRODUCT.md, "Thrive compatibility"), called as a Thrive client calls
/// it: bare arrays with page/perPage, Thrive's completion without a client id, the bulk member add with its 207; and
/// the list filters (updatedAtFrom/updatedAtTo, status lists) our own lists share with it.
/// </summary>
public sealed class ThriveTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private static readonly Regex NextLink = new("<([^>]+)>; rel=\"next\"", RegexOptions.CultureInvariant);

    private static JsonArray Array(ApiResponse response)
    {
        Assert.True(response.Json is JsonArray, $"A Thrive list is a bare JSON array: {response}");
        return response.Json.AsArray();
    }

    private static long TotalCount(ApiResponse response) => long.Parse(response.Headers["X-Total-Count"].ToString());

    /// <summary>The next page's address from the Link header, as a path and query the test host serves, or null on the last page.</summary>
    private static string? Next(ApiResponse response)
    {
        var match = NextLink.Match(response.Headers.Link.ToString());
        return match.Success ? new Uri(match.Groups[1].Value).PathAndQuery : null;
    }

    private Task<ApiResponse> PostCompletion(object body, string? idempotencyKey = null) =>
        SendWithHeaders(HttpMethod.Post, "/rest/v1/learning/completions", Scenarios.ToJson(body),
            idempotencyKey is null ? [] : [("Idempotency-Key", idempotencyKey)]);

    private async Task<ApiResponse> SendWithHeaders(HttpMethod method, string url, string json, (string Name, string Value)[] headers)
    {
        var result = await Host.Scenario(s =>
        {
            if (method == HttpMethod.Post) s.Post.RawJson(json).ToUrl(url); else throw new ArgumentOutOfRangeException(nameof(method));
            s.WithRequestHeader("Authorization", Auth);
            foreach (var (name, value) in headers) s.WithRequestHeader(name, value);
            s.IgnoreStatusCode();
        });
        return new ApiResponse(result.Context.Response.StatusCode, result.Context.Response.Headers, await result.ReadAsTextAsync());
    }

    // ---------------------------------------------------------------- enrolments

    [Fact]
    public async Task The_enrolment_list_is_a_bare_array_in_numbered_pages_with_the_total_and_a_next_link_until_the_last_page()
    {
        var users = Enumerable.Range(1, 5).Select(i => $"u{i}").ToArray();
        var assignmentId = await OpenAssignmentFor(users);

        // A client follows rel="next" until there is none.
        var seen = new List<JsonNode>();
        var pageSizes = new List<int>();
        string? url = $"/rest/v1/assignments/{assignmentId}/enrolments?perPage=2";
        while (url is not null)
        {
            var response = (await Get(url)).AssertStatus(200);
            Assert.StartsWith("application/json", response.ContentType);
            Assert.Equal(5, TotalCount(response));
            var items = Array(response);
            pageSizes.Add(items.Count);
            seen.AddRange(items.Select(i => i!));
            url = Next(response);
            Assert.True(pageSizes.Count <= 3, "5 enrolments in pages of 2 take 3 pages");
        }
        Assert.Equal([2, 2, 1], pageSizes.ToArray());
        Assert.Equal(users, seen.Select(e => e.Str("userId")).Order().ToArray());
        Assert.Equal(5, seen.Select(e => e.Str("id")).Distinct().Count());
        Assert.All(seen, e => Assert.Equal(assignmentId, e.Str("assignmentId")));

        // The last page names no next page but the others; a page past it is empty and still carries the total.
        var last = (await Get($"/rest/v1/assignments/{assignmentId}/enrolments?page=3&perPage=2")).AssertStatus(200);
        Assert.Single(Array(last));
        Assert.Null(Next(last));
        Assert.Contains("rel=\"prev\"", last.Headers.Link.ToString());
        Assert.Contains("page=1", last.Headers.Link.ToString());
        var past = (await Get($"/rest/v1/assignments/{assignmentId}/enrolments?page=4&perPage=2")).AssertStatus(200);
        Assert.Empty(Array(past));
        Assert.Equal(5, TotalCount(past));
        Assert.Null(Next(past));

        // Exactly a multiple of perPage: the full last page promises no empty next one.
        var five = (await Get($"/rest/v1/assignments/{assignmentId}/enrolments?perPage=5")).AssertStatus(200);
        Assert.Equal(5, Array(five).Count);
        Assert.Null(Next(five));

        // perPage defaults to 100, page to 1.
        var all = (await Get($"/rest/v1/assignments/{assignmentId}/enrolments")).AssertStatus(200);
        Assert.Equal(5, Array(all).Count);
        Assert.Contains("perPage=100", all.Headers.Link.ToString());
    }

    [Theory]
    [InlineData("perPage=0", "perPage below 1")]
    [InlineData("perPage=101", "perPage above 100")]
    [InlineData("perPage=-5", "negative perPage")]
    [InlineData("page=0", "page below 1")]
    [InlineData("page=-1", "negative page")]
    [InlineData("page=2147483647&perPage=100", "a page no offset can reach")]
    [InlineData("status=done", "unknown status")]
    [InlineData("status=open,,overdue", "an empty status in the list")]
    [InlineData("updatedAtFrom=yesterday", "updatedAtFrom not an instant")]
    [InlineData("updatedAtFrom=2024-01-02T00:00:00Z&updatedAtTo=2024-01-01T00:00:00Z", "updatedAtTo before updatedAtFrom")]
    public async Task An_out_of_range_Thrive_list_query_is_422(string query, string because)
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var response = await Get($"/rest/v1/assignments/{assignmentId}/enrolments?{query}");
        Assert.True(response.Status == 422, $"{because}: {response}");
        response.AssertProblem(422);
    }

    [Fact]
    public async Task The_Thrive_list_of_an_unknown_assignment_is_404_and_of_a_malformed_id_422()
    {
        (await Get($"/rest/v1/assignments/{Guid.NewGuid()}/enrolments")).AssertProblem(404);
        (await Get("/rest/v1/assignments/not-an-id/enrolments")).AssertProblem(422);
    }

    [Fact]
    public async Task A_Thrive_enrolment_by_id_is_our_enrolment_and_another_assignments_id_is_404()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");

        var thrive = (await Get($"/rest/v1/assignments/{assignmentId}/enrolments/{enrolmentId}")).AssertStatus(200);
        var ours = (await Get($"/assignments/{assignmentId}/enrolments/{enrolmentId}")).AssertStatus(200);
        Assert.True(JsonNode.DeepEquals(ours.Json, thrive.Json), $"{ours.Body}\n{thrive.Body}");

        var asOf = (await Get($"/rest/v1/assignments/{assignmentId}/enrolments/{enrolmentId}?asOf={Now()}")).AssertStatus(200).Json;
        Assert.Equal(("open", 1), (asOf.Str("status"), asOf["eventLog"]!.AsArray().Count));
        (await Get($"/rest/v1/assignments/{Guid.NewGuid()}/enrolments/{enrolmentId}")).AssertProblem(404);
        (await Get($"/rest/v1/assignments/{assignmentId}/enrolments/{Guid.NewGuid()}")).AssertProblem(404);
        (await Get($"/rest/v1/assignments/{assignmentId}/enrolments/nope")).AssertProblem(422);
    }

    [Fact]
    public async Task EventLog_entries_carry_Thrives_type_and_nextStatus_beside_the_deprecated_eventType_and_newStatus()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var completion = (await PostCompletion(new { userId = "u1", contentId = "c1", completedAt = Now() })).AssertStatus(200).Json;

        var fromList = Array((await Get($"/rest/v1/assignments/{assignmentId}/enrolments")).AssertStatus(200)).Single()!;
        var byId = (await Get($"/rest/v1/assignments/{assignmentId}/enrolments/{enrolmentId}")).AssertStatus(200).Json;
        foreach (var enrolment in new[] { fromList, byId })
        {
            var log = enrolment["eventLog"]!.AsArray();
            Assert.Equal(2, log.Count);
            foreach (var entry in log)
            {
                Assert.Equal(entry.Str("eventType"), entry.Str("type"));
                Assert.Equal(entry.Str("newStatus"), entry.Str("nextStatus"));
                Assert.Matches(Scenarios.InstantFormat, entry.Str("createdAt"));
                Assert.Matches(Scenarios.InstantFormat, entry.Str("updatedAt"));
            }
            Assert.Equal(("enrolment.assigned", "unassigned", "open"), (log[0].Str("type"), log[0].Str("previousStatus"), log[0].Str("nextStatus")));
            Assert.Equal(("enrolment.completed", "open", "complete"), (log[1].Str("type"), log[1].Str("previousStatus"), log[1].Str("nextStatus")));
            Assert.Equal(completion.Str("id"), log[1].Str("completionId"));
        }
    }

    // ---------------------------------------------------------------- completions

    [Fact]
    public async Task A_Thrive_completion_completes_the_enrolment_and_its_repeat_answers_the_first_record_and_changes_nothing()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var body = new { userId = "u1", contentId = "c1", completedAt = Now(TimeSpan.FromMinutes(-1)) };

        var first = (await PostCompletion(body)).AssertStatus(200);
        var record = first.Json;
        Assert.Matches("^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", record.Str("id"));
        Assert.Equal(("u1", "c1", body.completedAt), (record.Str("userId"), record.Str("contentId"), record.Str("completedAt")));
        Assert.Matches(Scenarios.InstantFormat, record.Str("createdAt"));
        var completed = record["completed"]!.AsArray().Single()!;
        Assert.Equal(enrolmentId, completed.Str("enrolmentId"));
        Assert.Equal("complete", (await GetEnrolment(assignmentId, enrolmentId)).Str("status"));
        var eventsAfterFirst = (await Events(assignmentId, enrolmentId)).Count;

        // No client id: the same (user, content, completedAt) is the same completion, even written with an offset.
        var repeat = (await PostCompletion(body)).AssertStatus(200);
        Assert.True(JsonNode.DeepEquals(record, repeat.Json), $"{first.Body}\n{repeat.Body}");
        var offsetForm = DateTimeOffset.Parse(body.completedAt).ToOffset(TimeSpan.FromHours(2)).ToString("yyyy-MM-dd'T'HH:mm:ss.fffzzz");
        var again = (await PostCompletion(new { body.userId, body.contentId, completedAt = offsetForm })).AssertStatus(200);
        Assert.Equal(record.Str("id"), again.Json.Str("id"));
        Assert.Equal(eventsAfterFirst, (await Events(assignmentId, enrolmentId)).Count);
        var listed = Array((await Get("/rest/v1/learning/completions?userId=u1")).AssertStatus(200));
        Assert.Single(listed);

        // Another tenant sending the same completion gets a record of its own (the same id, in its own store).
        var (otherSecret, _, _) = await CreateTenant("eu-west-2_OtherTenant");
        var other = Basic("eu-west-2_OtherTenant", otherSecret);
        Assert.Empty(Array((await Get("/rest/v1/learning/completions", other)).AssertStatus(200)));
        var theirs = (await Post("/rest/v1/learning/completions", body, other)).AssertStatus(200).Json;
        Assert.Equal(record.Str("id"), theirs.Str("id"));
        Assert.Empty(theirs["completed"]!.AsArray());
        Assert.Single(Array((await Get("/rest/v1/learning/completions", other)).AssertStatus(200)));

        // Another instant is another completion.
        var later = (await PostCompletion(new { body.userId, body.contentId, completedAt = Now() })).AssertStatus(200);
        Assert.NotEqual(record.Str("id"), later.Json.Str("id"));
    }

    [Fact]
    public async Task With_an_Idempotency_Key_the_key_is_the_completion_id_and_a_reuse_for_another_completion_is_409()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var body = new { userId = "u1", contentId = "c1", completedAt = Now() };

        var first = (await PostCompletion(body, idempotencyKey: "lms-42")).AssertStatus(200);
        Assert.Equal("lms-42", first.Json.Str("id"));
        Assert.Single(first.Json["completed"]!.AsArray());
        var repeat = (await PostCompletion(body, idempotencyKey: "lms-42")).AssertStatus(200);
        Assert.True(JsonNode.DeepEquals(first.Json, repeat.Json), $"{first.Body}\n{repeat.Body}");

        // The key is our completionId: POST /completions with it and the same payload answers the same record.
        var ours = (await Complete("lms-42", "u1", "c1", body.completedAt)).AssertStatus(200);
        Assert.Equal(first.Json.Str("createdAt"), ours.Json.Str("recordedAt"));

        (await PostCompletion(new { body.userId, body.contentId, completedAt = Now(TimeSpan.FromMinutes(-3)) }, idempotencyKey: "lms-42")).AssertProblem(409);
        var bad = (await PostCompletion(body, idempotencyKey: "no spaces allowed")).AssertProblem(422);
        Assert.True(bad["errors"]?["idempotencyKey"] is not null, bad.ToJsonString());

        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var log = (await GetEnrolment(assignmentId, enrolmentId))["eventLog"]!.AsArray();
        Assert.Single(log, e => e!["completionId"]?.GetValue<string>() == "lms-42");
    }

    [Theory]
    [InlineData("{\"contentId\":\"c1\",\"completedAt\":\"2024-01-01T00:00:00.000Z\"}", "userId")]
    [InlineData("{\"userId\":\"u1\",\"completedAt\":\"2024-01-01T00:00:00.000Z\"}", "contentId")]
    [InlineData("{\"userId\":\"u1\",\"contentId\":\"c1\"}", "completedAt")]
    [InlineData("{\"userId\":\"u1\",\"contentId\":\"c1\",\"completedAt\":\"2999-01-01T00:00:00.000Z\"}", "completedAt")]
    public async Task An_invalid_Thrive_completion_is_422_naming_the_field_and_records_nothing(string json, string field)
    {
        var problem = (await Post("/rest/v1/learning/completions", json)).AssertProblem(422);
        Assert.NotNull(problem["errors"]![field]);
        Assert.Null(problem["errors"]!["completionId"]);
        Assert.Empty(Array((await Get("/rest/v1/learning/completions")).AssertStatus(200)));
    }

    [Fact]
    public async Task Malformed_JSON_to_a_Thrive_route_is_400()
    {
        (await Post("/rest/v1/learning/completions", "{\"userId\":")).AssertProblem(400);
        (await Post("/rest/v1/audiences/a1/members", "[\"u1\",")).AssertProblem(400);
    }

    [Fact]
    public async Task The_completion_list_filters_by_user_content_and_completed_range_and_pages_up_to_1000()
    {
        await PutContent("c1");
        await PutContent("c2");
        string At(int minutesAgo) => Now(TimeSpan.FromMinutes(-minutesAgo));
        var t30 = At(30); var t20 = At(20); var t10 = At(10);
        (await PostCompletion(new { userId = "u1", contentId = "c1", completedAt = t30 })).AssertStatus(200);
        (await PostCompletion(new { userId = "u1", contentId = "c2", completedAt = t20 })).AssertStatus(200);
        (await PostCompletion(new { userId = "u2", contentId = "c1", completedAt = t10 })).AssertStatus(200);
        (await Complete("ours-1", "u2", "c2", t20, answer: 87)).AssertStatus(200); // through our own route: listed too

        async Task<string[]> List(string query)
        {
            var response = (await Get($"/rest/v1/learning/completions?{query}")).AssertStatus(200);
            var items = Array(response);
            Assert.Equal(items.Count, TotalCount(response));
            return items.Select(i => $"{i.Str("userId")}/{i.Str("contentId")}@{i.Str("completedAt")}").ToArray();
        }

        // Oldest completedAt first.
        var all = await List("");
        Assert.Equal([$"u1/c1@{t30}", $"u1/c2@{t20}", $"u2/c1@{t10}", $"u2/c2@{t20}"], all.Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(all.Select(x => x[(x.IndexOf('@') + 1)..]).Order(StringComparer.Ordinal), all.Select(x => x[(x.IndexOf('@') + 1)..]));
        Assert.Equal([$"u1/c1@{t30}", $"u1/c2@{t20}"], await List("userId=u1"));
        Assert.Equal([$"u1/c1@{t30}", $"u2/c1@{t10}"], await List("contentId=c1"));
        Assert.Equal([$"u2/c1@{t10}"], await List("userId=u2&contentId=c1"));
        // Start inclusive, end exclusive.
        Assert.Equal([$"u1/c2@{t20}", $"u2/c2@{t20}"], (await List($"completedDateRangeStart={t20}&completedDateRangeEnd={t10}")).Order(StringComparer.Ordinal).ToArray());
        Assert.Equal([$"u1/c1@{t30}"], await List($"completedDateRangeEnd={t20}"));
        Assert.Empty(await List("userId=nobody"));

        var ours = Array((await Get("/rest/v1/learning/completions?userId=u2&contentId=c2")).AssertStatus(200)).Single()!;
        Assert.Equal(("ours-1", 87.0), (ours.Str("id"), ours["answer"]!.GetValue<double>()));

        // Paging: one at a time, then past the end.
        var page2 = (await Get("/rest/v1/learning/completions?page=2&perPage=1")).AssertStatus(200);
        Assert.Single(Array(page2));
        Assert.Equal(4, TotalCount(page2));
        Assert.NotNull(Next(page2));
        var page4 = (await Get("/rest/v1/learning/completions?page=4&perPage=1")).AssertStatus(200);
        Assert.Single(Array(page4));
        Assert.Null(Next(page4));
        var page5 = (await Get("/rest/v1/learning/completions?page=5&perPage=1")).AssertStatus(200);
        Assert.Empty(Array(page5));
        Assert.Equal(4, TotalCount(page5));
        (await Get("/rest/v1/learning/completions?perPage=1000")).AssertStatus(200);
        (await Get("/rest/v1/learning/completions?perPage=1001")).AssertProblem(422);
        (await Get("/rest/v1/learning/completions?perPage=0")).AssertProblem(422);
        (await Get("/rest/v1/learning/completions?page=0")).AssertProblem(422);
        (await Get("/rest/v1/learning/completions?completedDateRangeStart=soon")).AssertProblem(422);
        (await Get("/rest/v1/learning/completions?userId=bad%20id")).AssertProblem(422);
    }

    // ---------------------------------------------------------------- audience members

    [Fact]
    public async Task Adding_100_members_with_one_bad_id_is_a_207_that_adds_the_99_and_names_the_bad_one()
    {
        await PutContent("c1");
        await SetMembers("a1", ["u0"]);
        var assignmentId = await CreateAssignment("a1", "c1");
        var ids = Enumerable.Range(1, 99).Select(i => $"user-{i}").Append("not a valid id!").ToArray();

        var response = (await Post("/rest/v1/audiences/a1/members", Scenarios.ToJson(ids))).AssertStatus(207);
        var body = response.Json;
        Assert.Equal(99, body["success"]!["count"]!.GetValue<int>());
        Assert.Equal(ids[..99], body["success"]!["entities"]!.AsArray().Select(e => e.Str("reference")).ToArray());
        Assert.Equal(1, body["failure"]!["count"]!.GetValue<int>());
        var failure = body["failure"]!["entities"]!.AsArray().Single()!;
        Assert.Equal("not a valid id!", failure.Str("reference"));
        Assert.False(string.IsNullOrWhiteSpace(failure.Str("reason")));
        await WaitForOperation(response);

        var members = (await Get("/audiences/a1/members")).AssertStatus(200).Json["userIds"]!.AsArray().Select(u => u!.GetValue<string>()).ToArray();
        Assert.Equal(ids[..99].Append("u0").Order(StringComparer.Ordinal).ToArray(), members);
        var enrolled = Array((await Get($"/rest/v1/assignments/{assignmentId}/enrolments")).AssertStatus(200));
        Assert.Equal(100, enrolled.Count);

        // All valid (repeats and present members included): 200, the same shape, nothing failed.
        var ok = (await Post("/rest/v1/audiences/a1/members", Scenarios.ToJson(new[] { "u0", "user-1", "user-100", "user-100" }))).AssertStatus(200);
        Assert.Equal(0, ok.Json["failure"]!["count"]!.GetValue<int>());
        Assert.Equal(["u0", "user-1", "user-100"], ok.Json["success"]!["entities"]!.AsArray().Select(e => e.Str("reference")).ToArray());
        await WaitForOperation(ok);
        var after = (await Get($"/rest/v1/assignments/{assignmentId}/enrolments")).AssertStatus(200);
        Assert.Equal((100, 101), (Array(after).Count, TotalCount(after)));
    }

    [Theory]
    [InlineData("[]", 422, "an empty array")]
    [InlineData("{\"userIds\":[\"u1\"]}", 400, "an object, not a bare array")]
    [InlineData("[1, 2]", 400, "numbers, not strings")]
    [InlineData("[\"bad id\", \"also bad\"]", 422, "no valid id at all")]
    [InlineData("101", 422, "101 ids")]
    public async Task An_audience_member_array_out_of_bounds_is_a_problem_and_adds_nobody(string body, int status, string because)
    {
        if (body == "101") body = Scenarios.ToJson(Enumerable.Range(1, 101).Select(i => $"u{i}"));
        var response = await Post("/rest/v1/audiences/a1/members", body);
        Assert.True(response.Status == status, $"{because}: {response}");
        response.AssertProblem(status);
        Assert.Empty((await Get("/audiences/a1/members")).AssertStatus(200).Json["userIds"]!.AsArray());
    }

    // ---------------------------------------------------------------- the OpenAPI document

    [Theory]
    [InlineData("/rest/v1/assignments/{assignmentId}/enrolments", "get", new[] { "200", "404", "422" })]
    [InlineData("/rest/v1/assignments/{assignmentId}/enrolments/{enrolmentId}", "get", new[] { "200", "404", "422" })]
    [InlineData("/rest/v1/learning/completions", "post", new[] { "200", "409", "422" })]
    [InlineData("/rest/v1/learning/completions", "get", new[] { "200", "422" })]
    [InlineData("/rest/v1/audiences/{audienceId}/members", "post", new[] { "200", "207", "422" })]
    public async Task The_OpenAPI_document_describes_each_Thrive_route_under_its_tag(string path, string method, string[] statuses)
    {
        var document = (await Host.Send(HttpMethod.Get, "/openapi/v1.json", null)).AssertStatus(200).Json;
        var operation = document["paths"]?[path]?[method];
        Assert.True(operation is not null, $"{method} {path} is not in the OpenAPI document");
        Assert.Contains("Thrive compatibility", operation["tags"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.False(string.IsNullOrWhiteSpace(operation["summary"]?.GetValue<string>()));
        foreach (var status in statuses) Assert.True(operation["responses"]?[status] is not null, $"{method} {path} documents no {status}: {operation["responses"]?.ToJsonString()}");
    }

    // ---------------------------------------------------------------- list filters (ours and Thrive's)

    [Fact]
    public async Task Lists_filter_on_updatedAtFrom_inclusive_updatedAtTo_exclusive_and_a_comma_separated_status_list()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2", "u3", "u4");
        (await Complete("cmp-1", "u1", "c1")).AssertStatus(200);
        (await Post($"/assignments/{assignmentId}/enrolments/{await EnrolmentIdFor(assignmentId, "u2")}/archive")).AssertStatus(200);
        var u1 = await FindEnrolment(assignmentId, "u1");
        var u2 = await FindEnrolment(assignmentId, "u2");
        var changedFrom = u1.Str("updatedAt"); // the completion came before the archive
        Assert.True(string.CompareOrdinal(changedFrom, u2.Str("updatedAt")) <= 0);
        var untouched = (await FindEnrolment(assignmentId, "u3")).Str("updatedAt");
        Assert.True(string.CompareOrdinal(untouched, changedFrom) < 0, "the completion was recorded after the fan-out");

        string[] Users(IEnumerable<JsonNode> items) => items.Select(i => i.Str("userId")).Order().ToArray();
        async Task<string[]> Ours(string query) => Users(await ListAll($"/assignments/{assignmentId}/enrolments?{query}"));
        async Task<string[]> Thrive(string query) => Users(Array((await Get($"/rest/v1/assignments/{assignmentId}/enrolments?{query}")).AssertStatus(200)).Select(i => i!));
        async Task<string[]> User(string userId, string query) => Users(await ListAll($"/users/{userId}/enrolments?{query}"));

        foreach (var list in new Func<string, Task<string[]>>[] { Ours, Thrive })
        {
            Assert.Equal(["u1", "u2"], await list($"updatedAtFrom={changedFrom}"));
            Assert.Equal(["u3", "u4"], await list($"updatedAtTo={changedFrom}"));
            Assert.Equal(["u1"], await list($"updatedAtFrom={changedFrom}&updatedAtTo={u2.Str("updatedAt")}"));
            Assert.Empty(await list($"updatedAtFrom={changedFrom}&updatedAtTo={changedFrom}"));
            Assert.Equal(["u1", "u3", "u4"], await list("status=open,complete"));
            Assert.Equal(["u2", "u3", "u4"], await list("status=open,%20archived"));
            Assert.Equal(["u1", "u2"], await list($"status=complete,archived&updatedAtFrom={changedFrom}"));
            Assert.Empty(await list("status=overdue,scheduled"));
        }
        Assert.Equal(["u1"], await User("u1", $"updatedAtFrom={changedFrom}&status=complete,open"));
        Assert.Empty(await User("u1", $"updatedAtTo={changedFrom}"));
        Assert.Equal(["u3"], await User("u3", $"updatedAtTo={changedFrom}&status=open,overdue"));

        (await Get($"/assignments/{assignmentId}/enrolments?status=open,closed")).AssertProblem(422);
        (await Get($"/assignments/{assignmentId}/enrolments?updatedAtFrom=today")).AssertProblem(422);
        (await Get("/users/u1/enrolments?updatedAtTo=2024-13-01T00:00:00Z")).AssertProblem(422);
    }

    /// <summary>
    /// The filters are index conditions, not row filters after a scan: checked on 2,000 enrolments and 2,000 completion
    /// records spread over 20 assignments, 100 users, 5 statuses and 100 days, with sequential scans priced out.
    /// </summary>
    [Fact]
    public async Task The_updatedAt_status_and_completion_filters_are_index_conditions()
    {
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        var now = NodaTime.SystemClock.Instance.GetCurrentInstant();
        var assignments = Enumerable.Range(0, 20).Select(_ => Guid.NewGuid()).ToArray();
        var schedule = new Schedule(now, NodaTime.Period.FromDays(30), null, null, Schedule.DefaultTimeZone);
        EnrolmentStatus[] statuses = [EnrolmentStatus.Scheduled, EnrolmentStatus.Open, EnrolmentStatus.Overdue, EnrolmentStatus.Complete, EnrolmentStatus.Archived];
        var states = Enumerable.Range(0, 2000).Select(i => EnrolmentState.Fold(null, EnrolmentRules.Assign(Guid.NewGuid(), assignments[i % 20], $"u{i % 100}", "a1", "c1", schedule,
            now - NodaTime.Duration.FromHours(i * 1.2))) with { Status = statuses[i % 5] }).ToList();
        var records = Enumerable.Range(0, 2000).Select(i => new CompletionRecord
        {
            Id = $"cmp-{i}",
            Result = new CompletionResult($"cmp-{i}", $"u{i % 100}", $"c{i % 20}", now - NodaTime.Duration.FromHours(i * 1.2), null, now, []),
        }).ToList();
        await store.BulkInsertDocumentsAsync(TenantId, states);
        await store.BulkInsertDocumentsAsync(TenantId, records);
        await Execute("ANALYZE enrolment.mt_doc_enrolment; ANALYZE enrolment.mt_doc_completionrecord");

        await using var session = store.QuerySession(TenantId);
        var table = Host.Services.GetRequiredService<Enrolment.Api.Features.Enrolments.EnrolmentTable>();
        var day = new Enrolment.Api.Features.Enrolments.EnrolmentTable.Filter(assignments[3], null, null, now - NodaTime.Duration.FromDays(2), now - NodaTime.Duration.FromDays(1));
        AssertIndexCondition(["assignment_id", "updated_at"], await Plan(table.PageCommand(TenantId, day, null, 100, null)));
        AssertIndexCondition(["user_id", "updated_at"], await Plan(table.PageCommand(TenantId, day with { AssignmentId = null, UserId = "u7" }, null, 100, null)));
        AssertIndexCondition(["assignment_id", "status"],
            await Plan(table.PageCommand(TenantId, day with { Statuses = [EnrolmentStatus.Open, EnrolmentStatus.Overdue], UpdatedFrom = null, UpdatedTo = null }, null, 100, null)));
        var since = now - NodaTime.Duration.FromDays(2);
        AssertIndexCondition(["resultuser_id", "resultcompleted_at"],
            await Plan(session.Query<CompletionRecord>().Where(r => r.Result.UserId == "u1" && r.Result.CompletedAt >= since).OrderBy(r => r.Result.CompletedAt).Take(100).ToCommand(FetchType.FetchMany)));
        AssertIndexCondition(["resultcontent_id"],
            await Plan(session.Query<CompletionRecord>().Where(r => r.Result.ContentId == "c1").OrderBy(r => r.Result.CompletedAt).Take(100).ToCommand(FetchType.FetchMany)));
        AssertIndexCondition(["resultcompleted_at"],
            await Plan(session.Query<CompletionRecord>().Where(r => r.Result.CompletedAt >= since).OrderBy(r => r.Result.CompletedAt).Take(100).ToCommand(FetchType.FetchMany)));
    }

    private static void AssertIndexCondition(string[] columns, string plan)
    {
        var conditions = string.Join('\n', plan.Split('\n').Where(l => l.TrimStart().StartsWith("Index Cond:", StringComparison.Ordinal)));
        Assert.True(columns.All(c => conditions.Contains(c, StringComparison.Ordinal)), $"Expected index conditions on {string.Join(", ", columns)} in:\n{plan}");
    }

    private static async Task Execute(string sql)
    {
        await using var connection = new NpgsqlConnection(AppFixture.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<string> Plan(NpgsqlCommand query)
    {
        var dataSource = new NpgsqlDataSourceBuilder(AppFixture.ConnectionString).UseNodaTime().Build();
        await using (dataSource)
        await using (var connection = await dataSource.OpenConnectionAsync())
        {
            await using (var off = new NpgsqlCommand("SET enable_seqscan = off", connection)) await off.ExecuteNonQueryAsync();
            query.Connection = connection;
            query.CommandText = "EXPLAIN " + query.CommandText;
            var lines = new List<string>();
            await using var reader = await query.ExecuteReaderAsync();
            while (await reader.ReadAsync()) lines.Add(reader.GetString(0));
            return string.Join('\n', lines);
        }
    }
}
