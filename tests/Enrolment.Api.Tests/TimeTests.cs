using System.Net.Http.Json;
using System.Text.Json;
using Alba;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Features.Time;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using NodaTime;

namespace Enrolment.Api.Tests;

[CollectionDefinition(Name)]
public sealed class TimeCollection
{
    public const string Name = "time";
}

/// <summary>
/// The transitions time drives, against real hosts and real time (seconds-level periods): these tests prove the
/// mechanism (restart, two nodes, catch-up), the rules themselves are unit-tested with a fake clock.
/// </summary>
[Collection(TimeCollection.Name)]
public sealed class TimeTests : IAsyncLifetime
{
    private const string Tenant = "eu-west-2_TimeTenant1";
    private string _auth = "";
    private readonly List<IAlbaHost> _hosts = [];

    public async Task InitializeAsync()
    {
        var host = await Start(transitions: false);
        await TestData.Reset(host.Services);
        _auth = await TestTenants.CreateWithAllScopes(host.Services, Tenant);
    }

    public async Task DisposeAsync()
    {
        foreach (var host in _hosts) await host.DisposeAsync();
    }

    private async Task<IAlbaHost> Start(bool transitions)
    {
        var host = await AppFixture.StartHost(transitions);
        _hosts.Add(host);
        return host;
    }

    private async Task Stop(IAlbaHost host)
    {
        _hosts.Remove(host);
        await host.DisposeAsync();
    }

    private string Auth => _auth;

    private static string At(Instant i) => Json.Format(i);

    /// <summary>Creates an audience and an assignment through the API and waits for the enrolments to exist.</summary>
    private async Task<Guid> Assign(IAlbaHost host, string[] users, object assignment)
    {
        await host.Scenario(s =>
        {
            s.Put.Json(new { userIds = users }).ToUrl("/audiences/staff/members");
            s.WithRequestHeader("Authorization", Auth);
            s.StatusCodeShouldBe(202);
        });
        var created = await host.Scenario(s =>
        {
            s.Post.Json(assignment).ToUrl("/assignments");
            s.WithRequestHeader("Authorization", Auth);
            s.StatusCodeShouldBe(201);
        });
        var id = created.ReadAsJson<JsonElement>().GetProperty("assignment").GetProperty("id").GetGuid();
        await Eventually(async () => (await Enrolments(host, id)).Count == users.Length, TimeSpan.FromSeconds(20), "enrolments created by the fan-out");
        return id;
    }

    private async Task<List<EnrolmentState>> Enrolments(IAlbaHost host, Guid assignmentId)
    {
        await using var session = host.Services.GetRequiredService<IDocumentStore>().QuerySession(Tenant);
        return (await session.Query<EnrolmentState>().Where(v => v.AssignmentId == assignmentId).ToListAsync()).ToList();
    }

    private async Task<IReadOnlyList<IEnrolmentEvent>> Events(IAlbaHost host, Guid enrolmentId)
    {
        await using var session = host.Services.GetRequiredService<IDocumentStore>().QuerySession(Tenant);
        return (await session.Events.FetchStreamAsync(enrolmentId)).Select(e => (IEnrolmentEvent)e.Data).ToList();
    }

    private static async Task Eventually(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return;
            await Task.Delay(200);
        }
        Assert.Fail($"Timed out after {timeout.TotalSeconds} s waiting for {what}.");
    }

    [Fact]
    public async Task A_scheduled_enrolment_opens_then_becomes_overdue_on_its_own_with_no_request()
    {
        var host = await Start(transitions: true);
        var now = SystemClock.Instance.GetCurrentInstant();
        var available = now + Duration.FromSeconds(3);
        var due = available + Duration.FromSeconds(3);
        var assignment = await Assign(host, ["u1"], new { audienceId = "staff", primaryContentId = "c1", availableDate = At(available), dueDate = At(due) });

        var enrolment = (await Enrolments(host, assignment)).Single();
        Assert.Equal(EnrolmentStatus.Scheduled, enrolment.Status);

        await Eventually(async () => (await Enrolments(host, assignment)).Single().Status == EnrolmentStatus.Overdue, TimeSpan.FromSeconds(20), "the enrolment to become overdue");
        var view = (await Enrolments(host, assignment)).Single();
        Assert.Equal(["enrolment.assigned", "enrolment.opened", "enrolment.overdue"], view.EventLog.Select(e => e.EventType));
        Assert.Equal(["unassigned", "scheduled", "open"], view.EventLog.Select(e => EnrolmentRules.Lower(e.PreviousStatus)));
        Assert.True(view.EventLog[1].CreatedAt >= Instant.FromUnixTimeMilliseconds(available.ToUnixTimeMilliseconds()), "opened no earlier than availableDate");
        Assert.True(view.EventLog[2].CreatedAt > Instant.FromUnixTimeMilliseconds(due.ToUnixTimeMilliseconds()), "overdue only after dueDate passed");
        var overdue = (await Events(host, view.Id)).OfType<EnrolmentBecameOverdue>().Single();
        Assert.Equal(Instant.FromUnixTimeMilliseconds(due.ToUnixTimeMilliseconds()), Instant.FromUnixTimeMilliseconds(overdue.DueDate.ToUnixTimeMilliseconds()));

        // The clock caused both transitions (Features/Compliance/EventActors), each batch under a trace id of its own.
        await using var session = host.Services.GetRequiredService<IDocumentStore>().QuerySession(Tenant);
        var stored = await session.Events.FetchStreamAsync(view.Id);
        foreach (var e in stored.Skip(1))
        {
            Assert.Equal(Enrolment.Api.Features.Compliance.Actor.TimeDriven, Enrolment.Api.Features.Compliance.EventActors.Of(e));
            Assert.Matches("^[0-9a-f]{32}$", e.CorrelationId);
        }
        Assert.Equal("operation", Enrolment.Api.Features.Compliance.EventActors.Of(stored[0]).Type);
        // The set-based transitions kept the audit chain in their transactions.
        await AuditChecks.AssertIntact(host.Services, Tenant);
    }

    [Fact]
    public async Task A_recurring_assignment_rolls_into_its_next_periods_keeping_every_period_in_the_event_log()
    {
        var host = await Start(transitions: true);
        var available = SystemClock.Instance.GetCurrentInstant() + Duration.FromSeconds(1);
        var assignment = await Assign(host, ["u1"], new { audienceId = "staff", primaryContentId = "c1", availableDate = At(available), completionPeriod = "PT2S", recurrence = "PT3S" });
        var id = (await Enrolments(host, assignment)).Single().Id;

        // Complete period 0, then let period 1 pass without a completion.
        await Eventually(async () => (await Enrolments(host, assignment)).Single().Status == EnrolmentStatus.Open, TimeSpan.FromSeconds(10), "period 0 to open");
        await host.Scenario(s =>
        {
            s.Post.Json(new { completionId = "p0", userId = "u1", contentId = "c1", completedAt = At(SystemClock.Instance.GetCurrentInstant()) }).ToUrl("/completions");
            s.WithRequestHeader("Authorization", Auth);
            s.StatusCodeShouldBeOk();
        });
        await Eventually(async () => (await Events(host, id)).OfType<EnrolmentOpened>().Any(o => o.Period == 2), TimeSpan.FromSeconds(20), "period 2 to open");

        var events = await Events(host, id);
        var periods = events.OfType<EnrolmentOpened>().Select(o => o.Period).ToArray();
        Assert.Equal([0, 1, 2], periods.Take(3));
        Assert.Contains(events, e => e is EnrolmentRescheduled { Period: 1 });          // complete → scheduled at the end of period 0
        Assert.Contains(events, e => e is EnrolmentBecameOverdue { Period: 1 });        // period 1 passed with no completion
        var view = (await Enrolments(host, assignment)).Single();
        Assert.NotNull(view.LastCompletedAt);                                          // survives across periods
        Assert.Equal("enrolment.completed", view.EventLog.Single(e => e.CompletionId == "p0").EventType);
    }

    [Fact]
    public async Task Transitions_due_while_the_service_was_down_are_applied_once_when_it_starts_again()
    {
        var first = await Start(transitions: true);
        // Far enough ahead that the first service has surely stopped before it (a loaded machine starts hosts slowly).
        var due = SystemClock.Instance.GetCurrentInstant() + Duration.FromSeconds(8);
        var assignment = await Assign(first, ["u1", "u2", "u3"], new { audienceId = "staff", primaryContentId = "c1", dueDate = At(due) });
        await Stop(first);
        var stoppedAt = SystemClock.Instance.GetCurrentInstant();
        Assert.True(stoppedAt < due, $"the first service must stop before the due instant; setup took until {stoppedAt - due} after it");

        await Task.Delay((due + Duration.FromSeconds(4) - stoppedAt).ToTimeSpan()); // the due date passes while no service runs
        var probe = await Start(transitions: false);
        Assert.All(await Enrolments(probe, assignment), v => Assert.Equal(EnrolmentStatus.Open, v.Status));

        var restarted = await Start(transitions: true);
        await Eventually(async () => (await Enrolments(restarted, assignment)).All(v => v.Status == EnrolmentStatus.Overdue), TimeSpan.FromSeconds(20), "catch-up after restart");
        var restartedAt = SystemClock.Instance.GetCurrentInstant();
        foreach (var view in await Enrolments(restarted, assignment))
        {
            var overdue = (await Events(restarted, view.Id)).OfType<EnrolmentBecameOverdue>().ToList();
            Assert.Single(overdue);
            Assert.True(overdue[0].At > due + Duration.FromSeconds(3), "the event's instant is when it was applied, after the downtime");
            Assert.True(overdue[0].At <= restartedAt);
            Assert.Equal(due.ToUnixTimeMilliseconds(), overdue[0].DueDate.ToUnixTimeMilliseconds());
        }
    }

    [Fact]
    public async Task Two_service_instances_on_one_database_apply_each_transition_exactly_once()
    {
        var a = await Start(transitions: true);
        var b = await Start(transitions: true);
        var users = Enumerable.Range(1, 40).Select(i => $"user{i}").ToArray();
        var available = SystemClock.Instance.GetCurrentInstant() + Duration.FromSeconds(2);
        var assignment = await Assign(a, users, new { audienceId = "staff", primaryContentId = "c1", availableDate = At(available), dueDate = At(available + Duration.FromSeconds(2)) });

        await Eventually(async () => (await Enrolments(b, assignment)).All(v => v.Status == EnrolmentStatus.Overdue), TimeSpan.FromSeconds(30), "all 40 enrolments to become overdue");
        foreach (var view in await Enrolments(a, assignment))
        {
            var events = await Events(a, view.Id);
            Assert.Single(events.OfType<EnrolmentOpened>());
            Assert.Single(events.OfType<EnrolmentBecameOverdue>());
            Assert.Equal(3, events.Count);
        }
    }

    [Fact]
    public async Task A_completion_before_the_due_date_makes_the_overdue_transition_a_no_op()
    {
        var host = await Start(transitions: true);
        var due = SystemClock.Instance.GetCurrentInstant() + Duration.FromSeconds(2);
        var assignment = await Assign(host, ["u1"], new { audienceId = "staff", primaryContentId = "c1", dueDate = At(due) });
        await host.Scenario(s =>
        {
            s.Post.Json(new { completionId = "on-time", userId = "u1", contentId = "c1", completedAt = At(SystemClock.Instance.GetCurrentInstant()) }).ToUrl("/completions");
            s.WithRequestHeader("Authorization", Auth);
            s.StatusCodeShouldBeOk();
        });
        await Task.Delay(TimeSpan.FromSeconds(3));
        var poller = host.Services.GetRequiredService<TimeDrivenTransitions>();
        await poller.RunOnce(CancellationToken.None);
        var view = (await Enrolments(host, assignment)).Single();
        Assert.Equal(EnrolmentStatus.Complete, view.Status);
        Assert.DoesNotContain(await Events(host, view.Id), e => e is EnrolmentBecameOverdue);
    }
}
