using System.Text;
using System.Text.Json.Nodes;
using Alba;

namespace Enrolment.Api.Tests;

/// <summary>POST /completions/bulk: one result per item, in order, each what POST /completions answers; a bad item spoils nothing.</summary>
public sealed class BulkCompletionTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private async Task<ApiResponse> PostNdjson(string body)
    {
        var result = await Host.Scenario(s =>
        {
            s.Post.Text(body).ToUrl("/completions/bulk");
            s.WithRequestHeader("Authorization", Auth);
            s.WithRequestHeader("Content-Type", "application/x-ndjson");
            s.IgnoreStatusCode();
        });
        return new ApiResponse(result.Context.Response.StatusCode, result.Context.Response.Headers, await result.ReadAsTextAsync());
    }

    private static List<(int Index, int Status, JsonNode? Body)> Results(ApiResponse response) =>
        response.AssertStatus(207).Json["results"]!.AsArray()
            .Select(r => (r!["index"]!.GetValue<int>(), r["status"]!.GetValue<int>(), r["body"])).ToList();

    [Fact]
    public async Task Mixed_good_and_bad_items_each_get_what_POST_completions_answers_in_order()
    {
        var assignmentId = await OpenAssignmentFor("alice", "bob", "carol");
        var at = Now();
        var response = await Post("/completions/bulk", new
        {
            items = new object[]
            {
                new { completionId = "c-1", userId = "alice", contentId = "c1", completedAt = at, answer = 90 },
                new { completionId = "c-2", contentId = "c1", completedAt = at },                                // no userId: 422
                new { completionId = "c-1", userId = "alice", contentId = "c1", completedAt = at, answer = 90 }, // a repeat: the first answer
                new { completionId = "c-1", userId = "alice", contentId = "c1", completedAt = at, answer = 10 }, // same id, other payload: 409
                new { completionId = "c-3", userId = "bob", contentId = "c1", completedAt = at },
                new { completionId = 7, userId = "carol", contentId = "c1", completedAt = at },                  // wrong type: 400, like POST /completions
                new { completionId = "c-4", userId = "carol", contentId = "c1", completedAt = Now(TimeSpan.FromDays(1)) }, // in the future: 422
            },
        });
        var results = Results(response);
        Assert.Equal([0, 1, 2, 3, 4, 5, 6], results.Select(r => r.Index));
        Assert.Equal([200, 422, 200, 409, 200, 400, 422], results.Select(r => r.Status));

        // The same answers POST /completions gives: the result, and problem documents with their codes and field errors.
        var single = (await Complete("c-1", "alice", "c1", at, 90)).AssertStatus(200).Json;
        Assert.Equal(single.ToJsonString(), results[0].Body!.ToJsonString());
        Assert.Equal(single.ToJsonString(), results[2].Body!.ToJsonString());
        Assert.Equal(assignmentId, results[0].Body!["completed"]![0]!.Str("assignmentId"));
        Assert.NotNull(results[1].Body!["errors"]!["userId"]);
        Assert.Equal("completion-id-reused", results[3].Body!.Str("code"));
        Assert.Equal(409, results[3].Body!["status"]!.GetValue<int>());
        Assert.DoesNotContain("Enrolment.Api", results[5].Body!.ToJsonString());
        Assert.NotNull(results[6].Body!["errors"]!["completedAt"]);

        // The good items committed, the bad ones changed nothing.
        Assert.Equal("complete", (await FindEnrolment(assignmentId, "alice")).Str("status"));
        Assert.Equal("complete", (await FindEnrolment(assignmentId, "bob")).Str("status"));
        Assert.Equal("open", (await FindEnrolment(assignmentId, "carol")).Str("status"));
        var alice = await EnrolmentIdFor(assignmentId, "alice");
        Assert.Equal(2, (await Events(assignmentId, alice)).Count);
    }

    [Fact]
    public async Task NDJSON_is_one_completion_a_line_and_a_line_that_does_not_parse_is_a_400_at_its_index()
    {
        var assignmentId = await OpenAssignmentFor("alice", "bob");
        var at = Now();
        var body = new StringBuilder()
            .Append($"{{\"completionId\":\"n-1\",\"userId\":\"alice\",\"contentId\":\"c1\",\"completedAt\":\"{at}\"}}\n")
            .Append("{\"completionId\":\"n-2\",\"userId\":\n")
            .Append("\r\n")
            .Append($"{{\"completionId\":\"n-3\",\"userId\":\"bob\",\"contentId\":\"c1\",\"completedAt\":\"{at}\"}}\r\n")
            .ToString();
        var results = Results(await PostNdjson(body));
        Assert.Equal([(0, 200), (1, 400), (2, 200)], results.Select(r => (r.Index, r.Status)));
        Assert.Equal("malformed-json", results[1].Body!.Str("code"));
        Assert.Equal("complete", (await FindEnrolment(assignmentId, "alice")).Str("status"));
        Assert.Equal("complete", (await FindEnrolment(assignmentId, "bob")).Str("status"));
    }

    [Fact]
    public async Task None_or_more_than_1000_items_or_a_body_that_is_no_list_is_one_problem_for_the_request()
    {
        await OpenAssignmentFor("alice");
        (await Post("/completions/bulk", new { items = Array.Empty<object>() })).AssertProblem(422);
        var tooMany = Enumerable.Range(0, 1001).Select(i => new { completionId = $"m-{i}", userId = "alice", contentId = "c1", completedAt = Now() }).ToArray();
        (await Post("/completions/bulk", new { items = tooMany })).AssertProblem(422);
        (await Post("/completions/bulk", "{\"items\": [")).AssertProblem(400);
        (await Post("/completions/bulk", "{\"items\": {}}")).AssertProblem(422);
        (await Post("/completions/bulk", "[]")).AssertProblem(422);
        (await PostNdjson("\n\n")).AssertProblem(422);
        (await Host.Send(HttpMethod.Post, "/completions/bulk", Basic(TenantId, ReadSecret), "{\"items\":[]}")).AssertProblem(403);
        Assert.Equal("open", (await FindEnrolment(await EnrolmentIdForAssignment(), "alice")).Str("status"));
    }

    private async Task<string> EnrolmentIdForAssignment() =>
        (await Get("/users/alice/enrolments")).AssertStatus(200).Json["items"]![0]!.Str("assignmentId");

    [Fact]
    public async Task A_thousand_items_are_answered_in_order()
    {
        var users = Enumerable.Range(0, 20).Select(i => $"u{i}").ToArray();
        await OpenAssignmentFor(users);
        var at = Now();
        var items = Enumerable.Range(0, 1000).Select(i => new { completionId = $"k-{i % 500}", userId = users[i % 500 % users.Length], contentId = "c1", completedAt = at }).ToArray();
        var results = Results(await Post("/completions/bulk", new { items }));
        Assert.Equal(Enumerable.Range(0, 1000), results.Select(r => r.Index));
        Assert.All(results, r => Assert.Equal(200, r.Status));
        // The second half repeats the first: the same answers.
        Assert.All(Enumerable.Range(0, 500), i => Assert.Equal(results[i].Body!.ToJsonString(), results[i + 500].Body!.ToJsonString()));
    }
}
