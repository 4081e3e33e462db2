using System.Text.Json.Nodes;

namespace Enrolment.Api.Tests;

/// <summary>
/// PRODUCT.md, "Writes and races": two writes to one enrolment at the same instant (a waiver and a completion, an
/// archive and a completion) either both apply in an order the lifecycle allows, or the loser answers 409 and nothing of
/// it is stored. What serializes them is rule 2 of the one writer (docs/architecture.md): each append is optimistic on
/// the stream version it read, and the loser's whole transaction rolls back (its completion record included).
/// Each test runs many pairs at once and checks every enrolment's event log against what each request was answered.
/// </summary>
public sealed class OneEnrolmentRaceTests(AppFixture fixture, Xunit.Abstractions.ITestOutputHelper output) : ScenarioTest(fixture)
{
    private const int Pairs = 24;

    private static string[] Users(string prefix) => Enumerable.Range(0, Pairs).Select(i => $"{prefix}{i:00}").ToArray();

    private static bool Completed(ApiResponse completion, string enrolmentId) =>
        completion.Status == 200 && completion.Json["completed"]!.AsArray().Any(c => c!.Str("enrolmentId") == enrolmentId);

    private static int Count(JsonArray log, string eventType) => log.Count(e => e!.Str("eventType") == eventType);

    [Fact]
    public async Task A_waiver_and_a_completion_at_once_both_apply_in_either_order_or_the_loser_answers_409_and_stores_nothing()
    {
        var users = Users("wc");
        var assignmentId = await OpenAssignmentFor(users);
        var ids = new Dictionary<string, string>();
        foreach (var user in users) ids[user] = await EnrolmentIdFor(assignmentId, user);

        var answers = await Task.WhenAll(users.Select(async user =>
        {
            var waive = Post($"/assignments/{assignmentId}/enrolments/{ids[user]}/waive", new { reason = "Certified elsewhere" });
            var complete = Complete($"race-{user}", user, "c1");
            return (User: user, Waive: await waive, Completion: await complete);
        }));

        // How the pairs interleaved (both applied, either order, or a 409), for whoever reads the test's output.
        output.WriteLine(string.Join(", ", answers.GroupBy(a => $"waive {a.Waive.Status} / completion {a.Completion.Status}").Select(g => $"{g.Key}: {g.Count()}")));
        foreach (var (user, waive, completion) in answers)
        {
            Assert.True(waive.Status is 200 or 409, $"{user}: the waiver answered {waive}");
            Assert.True(completion.Status is 200 or 409, $"{user}: the completion answered {completion}");
            // Open or waived: an enrolment a completion answered 200 for is always among those it completed.
            if (completion.Status == 200) Assert.True(Completed(completion, ids[user]), $"{user}: a 200 that completed nothing: {completion}");

            var log = (await GetEnrolment(assignmentId, ids[user]))["eventLog"]!.AsArray();
            Assert.Equal(waive.Status == 200 ? 1 : 0, Count(log, "enrolment.waived"));
            Assert.Equal(completion.Status == 200 ? 1 : 0, Count(log, "enrolment.completed"));
            Assert.Equal("complete", (await GetEnrolment(assignmentId, ids[user])).Str("status"));

            // A completion that lost the race stored nothing, not even its record: sent again, it applies now.
            if (completion.Status == 409)
                Assert.True(Completed((await Complete($"race-{user}", user, "c1")).AssertStatus(200), ids[user]), $"{user}: the retried completion did not apply");
        }
    }

    [Fact]
    public async Task An_archive_and_a_completion_at_once_never_complete_an_archived_enrolment_and_the_loser_stores_nothing()
    {
        var users = Users("ac");
        var assignmentId = await OpenAssignmentFor(users);
        var ids = new Dictionary<string, string>();
        foreach (var user in users) ids[user] = await EnrolmentIdFor(assignmentId, user);

        var answers = await Task.WhenAll(users.Select(async user =>
        {
            var archive = Post($"/assignments/{assignmentId}/enrolments/{ids[user]}/archive");
            var complete = Complete($"arch-{user}", user, "c1");
            return (User: user, Archive: await archive, Completion: await complete);
        }));

        output.WriteLine(string.Join(", ", answers.GroupBy(a => $"archive {a.Archive.Status} / completion {a.Completion.Status} completed {Completed(a.Completion, ids[a.User])}").Select(g => $"{g.Key}: {g.Count()}")));
        foreach (var (user, archive, completion) in answers)
        {
            Assert.True(archive.Status is 200 or 409, $"{user}: the archive answered {archive}");
            Assert.True(completion.Status is 200 or 409, $"{user}: the completion answered {completion}");
            var log = (await GetEnrolment(assignmentId, ids[user]))["eventLog"]!.AsArray();
            var types = log.Select(e => e!.Str("eventType")).ToList();

            Assert.Equal(archive.Status == 200 ? 1 : 0, Count(log, "enrolment.archived"));
            // A completion applies only to an enrolment that was still open when it committed: before the archive.
            Assert.Equal(Completed(completion, ids[user]) ? 1 : 0, Count(log, "enrolment.completed"));
            if (types.Contains("enrolment.completed") && types.Contains("enrolment.archived"))
                Assert.True(types.IndexOf("enrolment.completed") < types.IndexOf("enrolment.archived"), $"{user}: completed after archived: {string.Join(", ", types)}");
        }
    }
}
