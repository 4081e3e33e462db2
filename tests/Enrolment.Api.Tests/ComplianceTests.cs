using Enrolment.Api.Infrastructure;
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

    /// <summary>The secret id of one of the test tenant's secrets, as stored (the events must name it, never the secret).</summary>
    private async Task<string> SecretIdOf(string secret)
    {
        await using var session = await Host.Services.GetRequiredService<Marten.IDocumentStore>().QueryHome();
        var account = await session.LoadAsync<Enrolment.Api.Infrastructure.Auth.TenantAccount>(TenantId);
        return Enrolment.Api.Infrastructure.Auth.Secrets.Match(account!, secret)!.SecretId;
    }

    private static (string? Type, string? Id, string? ByType, string? ById) ActorOf(JsonNode e)
    {
        var actor = e["actor"]!;
        return (actor["type"]?.GetValue<string>(), actor["id"]?.GetValue<string>(), actor["startedBy"]?["type"]?.GetValue<string>(), actor["startedBy"]?["id"]?.GetValue<string>());
    }

    [Fact]
    public async Task Every_event_names_its_actor_and_correlation_id_http_request_fan_out_operation_clock_and_bus_message()
    {
        var assignmentId = await OverdueAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var allId = await SecretIdOf(AllSecret);
        var writeId = await SecretIdOf(WriteSecret);

        // HTTP: the credential's secret id, and the request's W3C trace id (sent by the client here in traceparent).
        const string traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
        var extended = await Host.Scenario(s =>
        {
            s.Post.Json(new { dueDate = Now(TimeSpan.FromDays(3)), reason = "r" }).ToUrl($"/assignments/{assignmentId}/enrolments/{enrolmentId}/extend");
            s.WithRequestHeader("Authorization", Basic(TenantId, WriteSecret));
            s.WithRequestHeader("traceparent", $"00-{traceId}-00f067aa0ba902b7-01");
            s.StatusCodeShouldBe(200);
        });

        // The bus: a completion message, handled as one from RabbitMQ or the PostgreSQL queue would be.
        await using (var scope = Host.Services.CreateAsyncScope())
            await scope.ServiceProvider.GetRequiredService<IMessageBus>().InvokeForTenantAsync(TenantId,
                new Enrolment.Contracts.RecordCompletion(TenantId, "bus-1", "u1", "c1", DateTimeOffset.UtcNow, null));

        var events = await Events(assignmentId, enrolmentId);
        Assert.Equal(["enrolment.assigned", "enrolment.overdue", "enrolment.extended", "enrolment.completed"], events.Select(e => e.Str("eventType")).ToArray());

        // Fan-out: the operation, and the credential whose request started it.
        var (type, id, byType, byId) = ActorOf(events[0]!);
        Assert.Equal(("operation", "secret", allId), (type, byType, byId));
        Assert.Matches("^[0-9a-f-]{36}$", id);
        // The clock.
        Assert.Equal(("clock", "time-driven-transitions"), (ActorOf(events[1]!).Type, ActorOf(events[1]!).Id));
        // HTTP.
        Assert.Equal(("secret", writeId, (string?)null), (ActorOf(events[2]!).Type, ActorOf(events[2]!).Id, ActorOf(events[2]!).ByType));
        Assert.Equal(traceId, events[2].Str("correlationId"));
        // The bus message.
        Assert.Equal("bus", ActorOf(events[3]!).Type);
        Assert.Matches("^[0-9a-f-]{36}$", ActorOf(events[3]!).Id);
        foreach (var e in events) Assert.False(string.IsNullOrEmpty(e!["correlationId"]?.GetValue<string>()), $"no correlationId on {e}");
        // Every one of these paths chained its event in its own transaction, the actor inside the hash (docs/audit.md).
        Assert.Equal(new string('0', 64), events[0].Str("previousHash"));
        for (var i = 1; i < events.Count; i++) Assert.Equal(events[i - 1].Str("hash"), events[i].Str("previousHash"));
        await AuditChecks.AssertIntact(Host.Services, TenantId);
        // Never a secret.
        var body = events.ToJsonString();
        Assert.DoesNotContain(AllSecret, body);
        Assert.DoesNotContain(WriteSecret, body);
    }

    [Fact]
    public async Task Events_written_before_actors_were_recorded_show_the_legacy_actor()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        // As an older version left them: no actor metadata on the row.
        await using (var connection = await Host.Services.GetRequiredService<Npgsql.NpgsqlDataSource>().OpenConnectionAsync())
        await using (var command = new Npgsql.NpgsqlCommand("update enrolment.mt_events set headers = null, user_name = null, correlation_id = null, causation_id = null where stream_id = $1", connection))
        {
            command.Parameters.AddWithValue(Guid.Parse(enrolmentId));
            Assert.Equal(1, await command.ExecuteNonQueryAsync());
        }
        var first = (await Events(assignmentId, enrolmentId))[0]!;
        Assert.Equal(("legacy", (string?)null), (ActorOf(first).Type, ActorOf(first).Id));
        Assert.Null(first["correlationId"]);
    }
}
