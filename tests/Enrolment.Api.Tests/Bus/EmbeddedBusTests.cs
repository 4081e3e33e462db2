using Enrolment.Api.Features.Messaging;
using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Alba;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Contracts;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NodaTime;
using Npgsql;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Wolverine;
using Wolverine.Marten.Publishing;
using Wolverine.Postgresql;
using Wolverine.Runtime;
using Xunit.Abstractions;

namespace Enrolment.Api.Tests;

/// <summary>
/// The integration events and inbound completions on the embedded default bus: Wolverine's PostgreSQL queues in the
/// service's own database, read by a second, independent Wolverine application (the consumer host).
/// </summary>
[Collection(BusCollection.Name)]
public sealed class EmbeddedBusTests(EmbeddedBusFixture fixture, ITestOutputHelper output) : IClassFixture<EmbeddedBusFixture>
{
    private const string Tenant = BusFixture.Tenant;
    private IAlbaHost Service => fixture.Service;
    private ReceivedBusMessages Consumer => fixture.Consumer;

    [Fact]
    public async Task A_status_change_is_delivered_to_a_wolverine_consumer_in_a_second_host()
    {
        var (audience, content) = BusTest.NewAudienceAndContent();
        var assignment = await BusTest.Assign(Service, fixture.Auth, audience, content, ["u1", "u2"]);
        var e1 = Ids.EnrolmentId(Tenant, assignment, "u1");

        var assigned = await Consumer.WaitFor(e1, 1, TimeSpan.FromSeconds(20));
        var first = assigned[0].Message;
        Assert.Equal("enrolment.assigned", first.EventType);
        Assert.Equal("unassigned", first.PreviousStatus);
        Assert.Equal("open", first.NewStatus);
        Assert.Null(first.CompletionId);
        Assert.Equal(1, first.StreamVersion);

        (await Service.Send(HttpMethod.Post, "/completions", fixture.Auth,
            Scenarios.ToJson(new { completionId = "bus-done-1", userId = "u1", contentId = content, completedAt = BusTest.Now() }))).AssertStatus(200);

        var received = await Consumer.WaitFor(e1, 2, TimeSpan.FromSeconds(20));
        var completed = received[1].Message;
        Assert.Equal("enrolment.completed", completed.EventType);
        Assert.Equal("open", completed.PreviousStatus);
        Assert.Equal("complete", completed.NewStatus);
        Assert.Equal("bus-done-1", completed.CompletionId);
        Assert.Equal(2, completed.StreamVersion);

        foreach (var (message, envelope) in received)
        {
            Assert.Equal(1, message.SchemaVersion);
            Assert.Equal(Tenant, message.TenantId);
            Assert.Equal(e1, message.EnrolmentId);
            Assert.Equal(assignment, message.AssignmentId);
            Assert.Equal("u1", message.UserId);
            Assert.Equal(audience, message.AudienceId);
            Assert.Equal(content, message.PrimaryContentId);
            // The id a consumer deduplicates on is derived from (tenant, enrolment, version): the same on every redelivery.
            Assert.Equal(IntegrationEvents.MessageId(Tenant, e1, message.StreamVersion), message.MessageId);
            // The tenant travels on the envelope too (the tenant-id header).
            Assert.Equal(Tenant, envelope.TenantId);
        }
        Assert.NotEqual(received[0].Message.MessageId, received[1].Message.MessageId);

        // The consumer saw what the service's own event stream holds.
        var stream = await BusTest.Events(Service, e1);
        Assert.Equal(2, stream.Count);
        Assert.IsType<EnrolmentAssigned>(stream[0]);
        Assert.IsType<EnrolmentCompleted>(stream[1]);

        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.Equal(2, Consumer.For(e1).Select(m => m.Message.MessageId).Distinct().Count());
        var u2 = await Consumer.WaitFor(Ids.EnrolmentId(Tenant, assignment, "u2"), 1, TimeSpan.FromSeconds(5));
        Assert.Equal(["enrolment.assigned"], u2.Select(m => m.Message.EventType));
    }

    [Fact]
    public async Task Concurrent_identical_completions_commit_once_and_publish_once()
    {
        var (audience, content) = BusTest.NewAudienceAndContent();
        var assignment = await BusTest.Assign(Service, fixture.Auth, audience, content, ["u1"]);
        var e1 = Ids.EnrolmentId(Tenant, assignment, "u1");
        await Consumer.WaitFor(e1, 1, TimeSpan.FromSeconds(20));

        // Identical requests race at one open enrolment: each reads "not completed yet", appends a completion and
        // publishes its integration event; all but one transaction fail at commit, and what they published must
        // vanish with them.
        var body = Scenarios.ToJson(new { completionId = "race-1", userId = "u1", contentId = content, completedAt = BusTest.Now() });
        var responses = await BusTest.AllAtOnce(8, () => Service.Send(HttpMethod.Post, "/completions", fixture.Auth, body));
        output.WriteLine("concurrent answers: " + string.Join(", ", responses.Select(r => r.Status)));
        foreach (var r in responses.Where(r => r.Status != 200)) output.WriteLine(r.ToString());
        Assert.Contains(responses, r => r.Status == 200);

        var events = await BusTest.Events(Service, e1);
        Assert.Single(events.OfType<EnrolmentCompleted>());
        Assert.Equal(2, events.Count);

        var received = await Consumer.WaitFor(e1, 2, TimeSpan.FromSeconds(20));
        Assert.Equal("race-1", received[1].Message.CompletionId);
        // Give a leaked publication from a rolled-back transaction time to show up.
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Single(Consumer.For(e1), m => m.Message.CompletionId == "race-1");
        Assert.Equal(2, Consumer.For(e1).Count);

        // A lost race is the client's to retry: a replay (200) or a conflict (409), never an internal error.
        Assert.All(responses, r => Assert.True(r.Status is 200 or 409, $"a lost race answers 200 (replay) or 409, not {r}"));
    }

    [Fact]
    public async Task Concurrent_completions_reusing_one_completion_id_for_different_users_commit_and_publish_only_the_winner()
    {
        // Eight users, one completion id, eight different payloads at once: each transaction completes a different
        // enrolment (no stream conflict), so the losers fail only at commit, on the completion record. The
        // completions they appended and published must disappear entirely.
        var (audience, content) = BusTest.NewAudienceAndContent();
        var users = Enumerable.Range(1, 8).Select(i => $"u{i}").ToArray();
        var assignment = await BusTest.Assign(Service, fixture.Auth, audience, content, users);
        var enrolments = users.Select(u => Ids.EnrolmentId(Tenant, assignment, u)).ToArray();
        foreach (var e in enrolments) await Consumer.WaitFor(e, 1, TimeSpan.FromSeconds(20));

        var completedAt = BusTest.Now();
        var next = -1;
        var responses = await BusTest.AllAtOnce(users.Length, () =>
        {
            var user = users[Interlocked.Increment(ref next)];
            return Service.Send(HttpMethod.Post, "/completions", fixture.Auth,
                Scenarios.ToJson(new { completionId = "shared-1", userId = user, contentId = content, completedAt }));
        });
        output.WriteLine("concurrent answers: " + string.Join(", ", responses.Select(r => $"{r.Status} {(r.Status == 200 ? "" : r.Json["code"])}")));

        var winners = responses.Where(r => r.Status == 200).ToList();
        Assert.Single(winners);
        var winner = winners[0].Json.Str("userId");
        var winnerEnrolment = Ids.EnrolmentId(Tenant, assignment, winner);

        foreach (var (user, enrolment) in users.Zip(enrolments))
        {
            var events = await BusTest.Events(Service, enrolment);
            Assert.Equal(user == winner ? 2 : 1, events.Count);
            Assert.Equal(user == winner ? EnrolmentStatus.Complete : EnrolmentStatus.Open, (await BusTest.View(Service, enrolment))!.Status);
        }

        var received = await Consumer.WaitFor(winnerEnrolment, 2, TimeSpan.FromSeconds(20));
        Assert.Equal("shared-1", received[1].Message.CompletionId);
        await Task.Delay(TimeSpan.FromSeconds(2));
        foreach (var enrolment in enrolments.Where(e => e != winnerEnrolment))
            Assert.DoesNotContain(Consumer.For(enrolment), m => m.Message.CompletionId == "shared-1" || m.Message.EventType == "enrolment.completed");
        Assert.Equal(2, Consumer.For(winnerEnrolment).Count);

        // The losers reused a completionId for another payload: 409 (completion-id-reused when they lost before the
        // commit, concurrency-conflict when they lost at it), never a 500.
        Assert.All(responses.Where(r => r.Status != 200), r => Assert.True(r.Status == 409, $"a reused completionId answers 409, not {r}"));
    }

    [Fact]
    public async Task An_outboxed_session_disposed_without_commit_publishes_nothing()
    {
        var (audience, content) = BusTest.NewAudienceAndContent();
        var assignment = await BusTest.Assign(Service, fixture.Auth, audience, content, ["u1"]);
        var e1 = Ids.EnrolmentId(Tenant, assignment, "u1");
        await Consumer.WaitFor(e1, 1, TimeSpan.FromSeconds(20));

        var runtime = Service.Services.GetRequiredService<IWolverineRuntime>();
        var sessions = Service.Services.GetRequiredService<OutboxedSessionFactory>();
        var now = SystemClock.Instance.GetCurrentInstant();

        // A completion appended and published in an outboxed session that is never saved: rolled back.
        {
            var context = new MessageContext(runtime);
            await using var session = sessions.OpenSession(context, Tenant);
            var locks = await EnrolmentWriter.LockUsers(session, ["u1"], CancellationToken.None);
            var decided = await EnrolmentWriter.Change(session, context, [e1],
                state => EnrolmentRules.Complete(state, new Completion("rolled-back", content, now, null), now), now, CancellationToken.None, locks);
            Assert.Single(decided[0].Decision.Events);
        }

        // The same path, committed, is the control: it must be delivered (so the consumer was listening).
        {
            var context = new MessageContext(runtime);
            await using var session = sessions.OpenSession(context, Tenant);
            await EnrolmentWriter.Change(session, context, [e1], state => EnrolmentRules.Archive(state, ArchiveReason.Explicit, now), now, CancellationToken.None);
            await session.SaveChangesAsync();
        }

        var received = await Consumer.WaitFor(e1, 2, TimeSpan.FromSeconds(20));
        Assert.Equal("enrolment.archived", received[1].Message.EventType);
        Assert.Equal("open", received[1].Message.PreviousStatus);
        Assert.Equal(2, received[1].Message.StreamVersion);
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.DoesNotContain(Consumer.For(e1), m => m.Message.EventType == "enrolment.completed" || m.Message.CompletionId == "rolled-back");
        Assert.Equal(2, Consumer.For(e1).Count);
        var events = await BusTest.Events(Service, e1);
        Assert.Equal(2, events.Count);
        Assert.DoesNotContain(events, e => e is EnrolmentCompleted);
    }
}
