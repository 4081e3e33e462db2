using System.Text.Json.Nodes;
using Enrolment.Domain;
using Marten;
using Microsoft.Extensions.DependencyInjection;

namespace Enrolment.Api.Tests;

/// <summary>
/// The enrolment every client sees is the domain's one fold, stored once: whatever the sequence of writes, the stored
/// enrolment (read by id and in lists) equals the one rebuilt from its stream, and completions that came before an
/// enrolment existed count for it.
/// </summary>
public sealed class OneFoldTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private static readonly string[] Users = ["u1", "u2", "u3"];

    [Theory]
    [InlineData(1)] [InlineData(2)] [InlineData(3)] [InlineData(4)]
    public async Task After_random_writes_the_stored_enrolment_equals_the_one_rebuilt_from_its_stream(int seed)
    {
        var random = new Random(seed);
        await PutContent("c1");
        await SetMembers("a1", Users);
        var assignmentId = await CreateAssignment(new { audienceId = "a1", primaryContentId = "c1", completionPeriod = "P30D", recurrence = "P60D" });
        var ids = new Dictionary<string, string>();
        foreach (var u in Users) ids[u] = await EnrolmentIdFor(assignmentId, u);

        var log = new List<string>();
        for (var step = 0; step < 12; step++)
        {
            var user = Users[random.Next(Users.Length)];
            var id = ids[user];
            switch (random.Next(5))
            {
                case 0: log.Add($"complete {user}"); await Complete($"c-{step}", user, "c1"); break;
                case 1: log.Add($"remind {user}"); await Post($"/assignments/{assignmentId}/enrolments/{id}/reminders"); break;
                case 2: log.Add($"archive {user}"); await Post($"/assignments/{assignmentId}/enrolments/{id}/archive"); break;
                case 3: log.Add($"leave {user}"); if ((await Get("/audiences/a1/members")).Json["userIds"]!.AsArray().Any(x => x!.GetValue<string>() == user)) await RemoveMember("a1", user); break;
                default: log.Add($"join {user}"); await AddMembers("a1", [user]); break;
            }
        }

        var listed = (await ListAll($"/assignments/{assignmentId}/enrolments")).ToDictionary(i => i.Str("id"), i => i.ToJsonString());
        Assert.Equal(Users.Length, listed.Count);
        var future = Now(TimeSpan.FromDays(1));
        foreach (var (user, id) in ids)
        {
            var stored = (await Get($"/assignments/{assignmentId}/enrolments/{id}")).AssertStatus(200).Body;
            var rebuilt = (await Get($"/assignments/{assignmentId}/enrolments/{id}?asOf={future}")).AssertStatus(200).Body;
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(rebuilt), JsonNode.Parse(stored)),
                $"seed {seed}, {user}: stored {stored}\\nrebuilt {rebuilt}\\nafter {string.Join(", ", log)}");
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(stored), JsonNode.Parse(listed[id])), $"seed {seed}, {user}: the list shows what the read by id shows");
        }
    }

    [Fact]
    public async Task A_completion_recorded_before_the_enrolment_existed_completes_it_when_it_is_created()
    {
        await PutContent("c1");
        var before = (await Complete("early-1", "u1", "c1", Now(TimeSpan.FromMinutes(-10)), answer: 90)).AssertStatus(200).Json;
        Assert.Empty(before["completed"]!.AsArray());

        await SetMembers("a1", ["u1", "u2"]);
        var assignmentId = await CreateAssignment("a1", "c1");

        var u1 = await FindEnrolment(assignmentId, "u1");
        Assert.Equal("complete", u1.Str("status"));
        Assert.Equal(["enrolment.assigned", "enrolment.completed"], u1["eventLog"]!.AsArray().Select(e => e.Str("type")).ToArray());
        Assert.Equal("early-1", u1["eventLog"]![1].Str("completionId"));
        Assert.Equal("open", (await FindEnrolment(assignmentId, "u2")).Str("status"));

        // Mimecast-facing facts come from the same completion: it shows as watched with its answer.
        await using var session = Host.Services.GetRequiredService<IDocumentStore>().QuerySession(TenantId);
        var state = await session.LoadAsync<EnrolmentState>(Guid.Parse(u1.Str("id")));
        Assert.Equal(90, state!.LastAnswer);
        Assert.Equal(1, state.OnTimeCompletions);
    }

    [Fact]
    public async Task A_completion_recorded_while_the_user_was_not_a_member_counts_when_they_join()
    {
        await PutContent("c1");
        await SetMembers("a1", ["u2"]);
        var assignmentId = await CreateAssignment("a1", "c1");
        (await Complete("early-2", "u1", "c1")).AssertStatus(200);

        await AddMembers("a1", ["u1"]);
        Assert.Equal("complete", (await FindEnrolment(assignmentId, "u1")).Str("status"));
    }

    [Fact]
    public async Task A_recurring_assignment_ignores_completions_from_before_its_current_period()
    {
        await PutContent("c1");
        (await Complete("old-1", "u1", "c1", Now(TimeSpan.FromHours(-2)))).AssertStatus(200);
        await SetMembers("a1", ["u1"]);
        // Period 0 opens now: the completion two hours ago belongs to no period of this assignment.
        var assignmentId = await CreateAssignment(new { audienceId = "a1", primaryContentId = "c1", availableDate = Now(TimeSpan.FromMinutes(-1)), completionPeriod = "P30D", recurrence = "P1Y" });
        var u1 = await FindEnrolment(assignmentId, "u1");
        Assert.Equal("open", u1.Str("status"));
        Assert.Single(u1["eventLog"]!.AsArray());
    }

    [Fact]
    public async Task A_rejoining_user_is_given_a_completion_recorded_while_archived()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        await RemoveMember("a1", "u1");
        (await Complete("while-away", "u1", "c1")).AssertStatus(200);
        Assert.Equal("archived", (await FindEnrolment(assignmentId, "u1")).Str("status"));

        await AddMembers("a1", ["u1"]);
        var u1 = await FindEnrolment(assignmentId, "u1");
        Assert.Equal("complete", u1.Str("status"));
        Assert.Equal(["enrolment.assigned", "enrolment.archived", "enrolment.reinstated", "enrolment.completed"],
            u1["eventLog"]!.AsArray().Select(e => e.Str("type")).ToArray());
    }
}
