namespace Enrolment.Api.Tests;

/// <summary>
/// PRODUCT.md, "Writes and races": fan-outs decide whom to reach from the audience's members and assignments, which
/// other requests change meanwhile. Each test starts the two requests at the same time, on many audiences at once so
/// that some pairs interleave, and checks that neither missed the other.
/// </summary>
public sealed class FanOutRaceTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private const int Pairs = 40;
    private static readonly string[] Members = Enumerable.Range(0, 60).Select(i => $"m{i:00}").ToArray();

    [Fact]
    public async Task A_user_who_joins_while_an_assignment_of_the_audience_is_created_is_enrolled_in_it()
    {
        await PutContent("c1");
        for (var i = 0; i < Pairs; i++) await SetMembers($"aud{i}", Members);

        var answers = await Task.WhenAll(Enumerable.Range(0, Pairs).Select(async i =>
        {
            var created = Post("/assignments", new { audienceId = $"aud{i}", primaryContentId = "c1", completionPeriod = "P30D" });
            var joined = Post($"/audiences/aud{i}/members", new { userIds = new[] { "late" } });
            return (Created: (await created).AssertStatus(201), Joined: (await joined).AssertStatus(202));
        }));
        foreach (var (created, joined) in answers)
        {
            await WaitForOperation(created, timeout: TimeSpan.FromSeconds(60));
            await WaitForOperation(joined, timeout: TimeSpan.FromSeconds(60));
        }

        var missed = new List<string>();
        foreach (var (created, _) in answers)
        {
            var assignmentId = created.Json["assignment"].Str("id");
            var late = (await Get($"/assignments/{assignmentId}/enrolments?userId=late")).AssertStatus(200).Json["items"]!.AsArray();
            if (late.Count != 1 || late[0].Str("status") != "open") missed.Add($"{created.Json["assignment"].Str("audienceId")}: {late.ToJsonString()}");
        }
        Assert.True(missed.Count == 0, $"A member who joined while the assignment was created must be enrolled in it (rule 4 of the one writer); missed in {missed.Count} of {Pairs}: {string.Join("; ", missed)}");
    }

    [Fact]
    public async Task A_user_who_joins_while_the_assignment_is_removed_is_not_left_enrolled_in_a_removed_assignment()
    {
        await PutContent("c1");
        var assignments = new List<string>();
        for (var i = 0; i < Pairs; i++)
        {
            await SetMembers($"aud{i}", Members);
            assignments.Add(await CreateAssignment($"aud{i}", "c1"));
        }

        var answers = await Task.WhenAll(Enumerable.Range(0, Pairs).Select(async i =>
        {
            var joined = Post($"/audiences/aud{i}/members", new { userIds = new[] { "late" } });
            var removed = Delete($"/assignments/{assignments[i]}");
            return (Removed: (await removed).AssertStatus(202), Joined: (await joined).AssertStatus(202));
        }));
        foreach (var (removed, joined) in answers)
        {
            await WaitForOperation(removed, timeout: TimeSpan.FromSeconds(60));
            await WaitForOperation(joined, timeout: TimeSpan.FromSeconds(60));
        }

        var active = new List<string>();
        foreach (var assignmentId in assignments)
        {
            var enrolments = await ListAll($"/assignments/{assignmentId}/enrolments");
            active.AddRange(enrolments.Where(e => e.Str("status") != "archived").Select(e => $"{assignmentId}/{e.Str("userId")}: {e.Str("status")}"));
        }
        Assert.True(active.Count == 0, $"Every enrolment of a removed assignment is archived, a member who joined meanwhile included (rule 4 of the one writer): {string.Join("; ", active.Take(10))}");
    }
}
