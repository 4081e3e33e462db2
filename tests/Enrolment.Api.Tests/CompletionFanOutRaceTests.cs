using System.Text.Json.Nodes;

namespace Enrolment.Api.Tests;

/// <summary>
/// PRODUCT.md, "Writes and races": a completion answered 2xx is applied to every enrolment of its user whose primary
/// content matches, whether that enrolment exists already or is created or reinstated later, whatever the interleaving
/// with fan-out batches. These run completions at the same time as the batches (no waiting in between), so that the
/// completion and the batch that enrols its user are in flight together, as when an integrator records completions
/// while an assignment is rolled out.
/// </summary>
public sealed class CompletionFanOutRaceTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private const int AudienceSize = 500;
    private const int Completions = 100;

    private static string[] Users(string prefix) => Enumerable.Range(0, AudienceSize).Select(i => $"{prefix}{i:000}").ToArray();

    /// <summary>Every fifth user, the last one included: spread over the batch, so some land before and some after it commits.</summary>
    private static string[] Completers(string[] users) => users.Reverse().Where((_, i) => i % (AudienceSize / Completions) == 0).Take(Completions).ToArray();

    [Fact]
    public async Task Completions_recorded_while_a_new_assignment_fans_out_are_all_applied()
    {
        await PutContent("c1");
        var users = Users("u");
        await SetMembers("a1", users);

        var created = Post("/assignments", new { audienceId = "a1", primaryContentId = "c1", completionPeriod = "P30D" });
        var completions = RecordCompletionsMeanwhile(Completers(users), "c1");
        var assignment = (await created).AssertStatus(201);
        await completions;
        await WaitForOperation(assignment, timeout: TimeSpan.FromSeconds(120));

        await AssertCompleted(assignment.Json["assignment"].Str("id"), Completers(users));
    }

    [Fact]
    public async Task Completions_recorded_while_users_join_the_audience_are_all_applied()
    {
        await PutContent("c1");
        await SetMembers("a1", ["first"]);
        var assignmentId = await CreateAssignment("a1", "c1");
        var users = Users("j");

        var joined = Post("/audiences/a1/members", new { userIds = users });
        var completions = RecordCompletionsMeanwhile(Completers(users), "c1");
        var accepted = (await joined).AssertStatus(202);
        await completions;
        await WaitForOperation(accepted, timeout: TimeSpan.FromSeconds(120));

        await AssertCompleted(assignmentId, Completers(users));
    }

    [Fact]
    public async Task Completions_recorded_while_archived_users_rejoin_are_all_applied()
    {
        await PutContent("c1");
        var users = Users("r");
        await SetMembers("a1", users);
        var assignmentId = await CreateAssignment("a1", "c1");
        await SetMembers("a1", ["someone-else"]);
        Assert.Equal("archived", (await FindEnrolment(assignmentId, users[^1])).Str("status"));

        var rejoined = Put("/audiences/a1/members", new { userIds = users });
        var completions = RecordCompletionsMeanwhile(Completers(users), "c1");
        var accepted = (await rejoined).AssertStatus(202);
        await completions;
        await WaitForOperation(accepted, timeout: TimeSpan.FromSeconds(120));

        await AssertCompleted(assignmentId, Completers(users));
    }

    /// <summary>Records one completion per user, a few at a time, starting at once; each must be acknowledged.</summary>
    private async Task RecordCompletionsMeanwhile(string[] users, string contentId)
    {
        var completedAt = Now();
        using var gate = new SemaphoreSlim(8);
        await Task.WhenAll(users.Select(async user =>
        {
            await gate.WaitAsync();
            try { (await Complete($"done-{user}", user, contentId, completedAt)).AssertStatus(200); }
            finally { gate.Release(); }
        }));
    }

    private async Task AssertCompleted(string assignmentId, string[] users)
    {
        var enrolments = (await ListAll($"/assignments/{assignmentId}/enrolments")).ToDictionary(e => e.Str("userId"));
        var lost = users.Where(u => !enrolments.TryGetValue(u, out var e) || e.Str("status") != "complete")
            .Select(u => $"{u}: {(enrolments.TryGetValue(u, out var e) ? e.Str("status") : "no enrolment")}").ToList();
        Assert.True(lost.Count == 0,
            $"{lost.Count} of {users.Length} acknowledged completions were never applied (rule: no acknowledged completion is lost): {string.Join(", ", lost.Take(20))}");
        foreach (var user in users)
        {
            var log = (await GetEnrolment(assignmentId, enrolments[user].Str("id")))["eventLog"]!.AsArray();
            Assert.Single(log, e => e!["eventType"]?.GetValue<string>() == "enrolment.completed" && e["completionId"]?.GetValue<string>() == $"done-{user}");
        }
    }
}
