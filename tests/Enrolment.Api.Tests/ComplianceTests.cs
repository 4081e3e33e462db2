using System.Text.Json.Nodes;
using Enrolment.Api.Features.Time;
using Microsoft.Extensions.DependencyInjection;
using Wolverine;

namespace Enrolment.Api.Tests;

/// <summary>PRODUCT.md "Compliance": waivers and due-date extensions through the API.</summary>
public sealed class ComplianceTests(AppFixture fixture) : ScenarioTest(fixture)
{
    /// <summary>An assignment due in the past (so its enrolments are overdue once time is applied), for these users.</summary>
    private async Task<string> OverdueAssignmentFor(params string[] userIds)
    {
        await PutContent("c1");
        await SetMembers("a1", userIds);
        var id = await CreateAssignment(new { audienceId = "a1", primaryContentId = "c1", availableDate = Now(TimeSpan.FromDays(-10)), dueDate = Now(TimeSpan.FromDays(-1)) });
        foreach (var user in userIds) await ApplyTime(await EnrolmentIdFor(id, user));
        return id;
    }

    /// <summary>What the time-driven transitions would do to this enrolment now (the shared host runs none of its own).</summary>
    private async Task<int> ApplyTime(string enrolmentId)
    {
        await using var scope = Host.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<IMessageBus>().InvokeForTenantAsync<int>(TenantId, new ApplyDueTransitions([Guid.Parse(enrolmentId)]));
    }

    [Fact]
    public async Task Waiving_an_open_enrolment_completes_it_with_the_reason_and_no_completion_and_a_later_completion_is_still_recorded()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");

        var waived = (await Post($"/assignments/{assignmentId}/enrolments/{enrolmentId}/waive", new { reason = "Holds the CISSP certificate" })).AssertStatus(200).Json;
        Assert.Equal("complete", waived.Str("status"));
        Assert.Null(waived["lastCompletedAt"]);
        var entry = waived["eventLog"]!.AsArray()[^1]!;
        Assert.Equal(("enrolment.waived", "open", "complete", "Holds the CISSP certificate"), (entry.Str("eventType"), entry.Str("previousStatus"), entry.Str("newStatus"), entry.Str("reason")));

        // A second waiver: the status allows none.
        (await Post($"/assignments/{assignmentId}/enrolments/{enrolmentId}/waive", new { reason = "again" })).AssertProblem(409);

        // The real completion still counts for the record; the status stays complete.
        var completedAt = Now();
        (await Complete("done-1", "u1", "c1", completedAt)).AssertStatus(200);
        var after = await GetEnrolment(assignmentId, enrolmentId);
        Assert.Equal("complete", after.Str("status"));
        Assert.Equal(completedAt, after.Str("lastCompletedAt"));
        var last = after["eventLog"]!.AsArray()[^1]!;
        Assert.Equal(("enrolment.completed", "complete", "complete", "done-1"), (last.Str("eventType"), last.Str("previousStatus"), last.Str("newStatus"), last.Str("completionId")));

        var events = await Events(assignmentId, enrolmentId);
        Assert.Equal(["enrolment.assigned", "enrolment.waived", "enrolment.completed"], events.Select(e => e.Str("eventType")).ToArray());
        Assert.Equal("Holds the CISSP certificate", events[1]!["data"].Str("reason"));
    }

    [Fact]
    public async Task A_waiver_needs_a_reason_of_1_to_500_characters_and_an_open_or_overdue_enrolment()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var url = $"/assignments/{assignmentId}/enrolments/{enrolmentId}/waive";

        (await Post(url, new { })).AssertProblem(422);
        (await Post(url, new { reason = "" })).AssertProblem(422);
        (await Post(url, new { reason = new string('x', 501) })).AssertProblem(422);
        (await Post(url, "{\"reason\":")).AssertProblem(400);
        (await Post(url, new { reason = "ok" }, Basic(TenantId, ReadSecret))).AssertProblem(403);
        (await Post($"/assignments/{assignmentId}/enrolments/{Guid.NewGuid()}/waive", new { reason = "ok" })).AssertProblem(404);

        (await Post($"/assignments/{assignmentId}/enrolments/{enrolmentId}/archive")).AssertStatus(200);
        (await Post(url, new { reason = new string('x', 500) })).AssertProblem(409);
        Assert.Equal("archived", (await GetEnrolment(assignmentId, enrolmentId)).Str("status"));
    }

    [Fact]
    public async Task Waiving_an_overdue_enrolment_completes_it()
    {
        var assignmentId = await OverdueAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        Assert.Equal("overdue", (await GetEnrolment(assignmentId, enrolmentId)).Str("status"));

        var waived = (await Post($"/assignments/{assignmentId}/enrolments/{enrolmentId}/waive", new { reason = "medical leave" })).AssertStatus(200).Json;
        var entry = waived["eventLog"]!.AsArray()[^1]!;
        Assert.Equal(("complete", "overdue", "complete"), (waived.Str("status"), entry.Str("previousStatus"), entry.Str("newStatus")));
    }

    [Fact]
    public async Task Extending_an_overdue_enrolment_past_now_reopens_it_and_time_then_follows_the_new_due_date()
    {
        var assignmentId = await OverdueAssignmentFor("u1", "u2");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var newDue = Now(TimeSpan.FromDays(14));

        var extended = (await Post($"/assignments/{assignmentId}/enrolments/{enrolmentId}/extend", new { dueDate = newDue, reason = "back from leave" })).AssertStatus(200).Json;
        Assert.Equal(("open", newDue), (extended.Str("status"), extended.Str("dueDate")));
        var entry = extended["eventLog"]!.AsArray()[^1]!;
        Assert.Equal(("enrolment.extended", "overdue", "open", "back from leave"), (entry.Str("eventType"), entry.Str("previousStatus"), entry.Str("newStatus"), entry.Str("reason")));

        // Time now follows the new date: nothing is due, so the enrolment stays open.
        Assert.Equal(0, await ApplyTime(enrolmentId));
        Assert.Equal("open", (await GetEnrolment(assignmentId, enrolmentId)).Str("status"));
        // The other enrolment keeps its schedule.
        var other = await FindEnrolment(assignmentId, "u2");
        Assert.Equal("overdue", other.Str("status"));
        Assert.NotEqual(newDue, other.Str("dueDate"));

        // A completion before the new due date is on time.
        var completed = (await Complete("done-1", "u1", "c1")).AssertStatus(200).Json["completed"]!.AsArray();
        Assert.False(completed.Single(c => c.Str("enrolmentId") == enrolmentId)!["late"]!.GetValue<bool>());
    }

    [Fact]
    public async Task An_extension_must_be_later_than_the_current_due_date_and_now_and_needs_an_open_or_overdue_enrolment()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var url = $"/assignments/{assignmentId}/enrolments/{enrolmentId}/extend";
        var due = (await GetEnrolment(assignmentId, enrolmentId)).Str("dueDate");

        (await Post(url, new { dueDate = due, reason = "same date" })).AssertProblem(422);
        (await Post(url, new { dueDate = Now(TimeSpan.FromDays(1)), reason = "earlier" })).AssertProblem(422);
        (await Post(url, new { dueDate = "next tuesday", reason = "r" })).AssertProblem(422);
        (await Post(url, new { dueDate = Now(TimeSpan.FromDays(60)) })).AssertProblem(422);

        var later = Now(TimeSpan.FromDays(60));
        var extended = (await Post(url, new { dueDate = later, reason = "project deadline" })).AssertStatus(200).Json;
        Assert.Equal(("open", later), (extended.Str("status"), extended.Str("dueDate")));

        (await Complete("done-1", "u1", "c1")).AssertStatus(200);
        (await Post(url, new { dueDate = Now(TimeSpan.FromDays(90)), reason = "too late" })).AssertProblem(409);
    }

    [Fact]
    public async Task A_recurring_enrolment_cannot_be_extended_past_the_next_periods_availableDate()
    {
        await PutContent("c1");
        await SetMembers("a1", ["u1"]);
        var start = DateTimeOffset.UtcNow.AddDays(-1);
        string At(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);
        var assignmentId = await CreateAssignment(new { audienceId = "a1", primaryContentId = "c1", availableDate = At(start), completionPeriod = "P7D", recurrence = "P30D" });
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var url = $"/assignments/{assignmentId}/enrolments/{enrolmentId}/extend";

        (await Post(url, new { dueDate = At(start.AddDays(30).AddMilliseconds(1)), reason = "r" })).AssertProblem(422);
        var extended = (await Post(url, new { dueDate = At(start.AddDays(30)), reason = "r" })).AssertStatus(200).Json;
        Assert.Equal(At(start.AddDays(30)), extended.Str("dueDate"));
    }
}
