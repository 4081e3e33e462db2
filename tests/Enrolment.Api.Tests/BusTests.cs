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

[CollectionDefinition(Name)]
public sealed class BusCollection
{
    public const string Name = "bus";
}

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

/// <summary>
/// The same events and inbound completions on a real RabbitMQ, read and written with the plain RabbitMQ.Client, as a
/// consumer in any language would. The class runs in a virtual host of its own, so the documented exchange and queue
/// names are used without meeting another test run on the same broker.
/// </summary>
[Collection(BusCollection.Name)]
public sealed class RabbitMqBusTests(RabbitMqBusFixture fixture, ITestOutputHelper output) : IClassFixture<RabbitMqBusFixture>
{
    private const string Tenant = BusFixture.Tenant;
    private IAlbaHost Service => fixture.Service;

    [Fact]
    public async Task A_plain_client_bound_to_the_exchange_receives_each_status_change_in_order_as_json()
    {
        await using var connection = await fixture.Factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var deliveries = await BusTest.Subscribe(channel);

        var (audience, content) = BusTest.NewAudienceAndContent();
        var assignment = await BusTest.Assign(Service, fixture.Auth, audience, content, ["u1"]);
        var e1 = Ids.EnrolmentId(Tenant, assignment, "u1");
        var enrolmentUrl = $"/assignments/{assignment}/enrolments/{e1}";
        (await Service.Send(HttpMethod.Post, enrolmentUrl + "/reminders", fixture.Auth)).AssertStatus(200);
        (await Service.Send(HttpMethod.Post, "/completions", fixture.Auth,
            Scenarios.ToJson(new { completionId = "rabbit-done-1", userId = "u1", contentId = content, completedAt = BusTest.Now() }))).AssertStatus(200);
        (await Service.Send(HttpMethod.Post, enrolmentUrl + "/archive", fixture.Auth)).AssertStatus(200);

        List<BusTest.Delivery> Mine() => deliveries.Where(d => d.Json.GetProperty("enrolmentId").GetString() == e1.ToString()).ToList();
        await BusTest.Eventually(() => Task.FromResult(Mine().Count >= 4), TimeSpan.FromSeconds(20), "4 messages for the enrolment on the exchange");
        var mine = Mine();
        foreach (var d in mine)
        {
            output.WriteLine($"routing key {d.RoutingKey}; type={d.Props.Type}; content-type={d.Props.ContentType}; message-id={d.Props.MessageId}; " +
                             $"correlation-id={d.Props.CorrelationId}; delivery-mode={d.Props.DeliveryMode}");
            foreach (var h in d.Props.Headers ?? new Dictionary<string, object?>())
                output.WriteLine($"  header {h.Key} = {BusTest.Text(h.Value)}");
            output.WriteLine("  body " + Encoding.UTF8.GetString(d.Body));
        }

        Assert.Equal(
            [Bus.StatusChangedRoutingKey, Bus.ReminderRecordedRoutingKey, Bus.StatusChangedRoutingKey, Bus.StatusChangedRoutingKey],
            mine.Select(d => d.RoutingKey));
        Assert.Equal([1L, 2L, 3L, 4L], mine.Select(d => d.Json.GetProperty("streamVersion").GetInt64()));

        var statusChanges = mine.Where(d => d.RoutingKey == Bus.StatusChangedRoutingKey).ToList();
        Assert.Equal(["enrolment.assigned", "enrolment.completed", "enrolment.archived"], statusChanges.Select(d => d.Json.GetProperty("eventType").GetString()));
        Assert.Equal(["unassigned", "open", "complete"], statusChanges.Select(d => d.Json.GetProperty("previousStatus").GetString()));
        Assert.Equal(["open", "complete", "archived"], statusChanges.Select(d => d.Json.GetProperty("newStatus").GetString()));
        string[] fields = ["messageId", "schemaVersion", "tenantId", "enrolmentId", "assignmentId", "userId", "audienceId", "primaryContentId",
            "previousStatus", "newStatus", "eventType", "completionId", "occurredAt", "streamVersion", "availableDate", "dueDate", "reason"];
        foreach (var d in statusChanges)
        {
            // Plain camelCase JSON of the contract, nothing wrapped around it.
            Assert.Equal(fields.Order(), d.Json.EnumerateObject().Select(p => p.Name).Order());
            var message = JsonSerializer.Deserialize<EnrolmentStatusChanged>(d.Body, Json.Options)!;
            Assert.Equal(Tenant, message.TenantId);
            Assert.Equal(IntegrationEvents.MessageId(Tenant, e1, message.StreamVersion), message.MessageId);
            Assert.Equal("application/json", d.Props.ContentType);
            // The message type, for a consumer that is not Wolverine: the AMQP "type" property (there is no
            // "message-type" entry in the headers table).
            Assert.Equal("Enrolment.Contracts.EnrolmentStatusChanged", d.Props.Type);
            Assert.Equal(Tenant, BusTest.Header(d.Props, "tenant-id"));
        }
        Assert.Equal("rabbit-done-1", statusChanges[1].Json.GetProperty("completionId").GetString());
        Assert.Equal(JsonValueKind.Null, statusChanges[0].Json.GetProperty("completionId").ValueKind);
        var reminder = mine.Single(d => d.RoutingKey == Bus.ReminderRecordedRoutingKey);
        Assert.Equal("Enrolment.Contracts.EnrolmentReminderRecorded", reminder.Props.Type);
        Assert.Equal(1, reminder.Json.GetProperty("reminderNumber").GetInt32());
        Assert.Equal(Tenant, BusTest.Header(reminder.Props, "tenant-id"));

        // The service's own queue bound with "#" holds the same events for anyone to read.
        var all = await channel.QueueDeclarePassiveAsync("enrolment.events.all");
        Assert.True(all.MessageCount >= 4, $"enrolment.events.all holds {all.MessageCount} messages");
    }

    [Fact]
    public async Task An_inbound_completion_with_the_tenant_in_the_header_completes_an_enrolment_once()
    {
        await using var connection = await fixture.Factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var events = await BusTest.Subscribe(channel);

        var (audience, content) = BusTest.NewAudienceAndContent();
        var assignment = await BusTest.Assign(Service, fixture.Auth, audience, content, ["u1", "u2"]);
        Guid E(string user) => Ids.EnrolmentId(Tenant, assignment, user);

        // Plain JSON of RecordCompletion, no Wolverine headers: only the content type and the tenant-id header.
        var completedAt = BusTest.Now();
        var body = Scenarios.ToJson(new { completionId = "inbound-1", userId = "u1", contentId = content, completedAt, answer = 0.9 });
        var tenantHeader = new Dictionary<string, object?> { ["tenant-id"] = Tenant };
        await BusTest.Publish(channel, "enrolment.completions", body, tenantHeader);

        await BusTest.Eventually(async () => (await BusTest.View(Service, E("u1")))?.Status == EnrolmentStatus.Complete, TimeSpan.FromSeconds(10),
            "u1 completed by the inbound message", () => BusTest.WhereIsCompletion(Service, "inbound-1"));
        var completed = (await BusTest.Events(Service, E("u1"))).OfType<EnrolmentCompleted>().Single();
        Assert.Equal("inbound-1", completed.CompletionId);
        Assert.Equal(0.9, completed.Answer);
        Assert.Equal(completedAt, Json.Format(completed.CompletedAt));

        // The status change it caused goes out with the tenant, in the body and in the tenant-id header.
        bool IsInbound1(BusTest.Delivery d) => d.Json.GetProperty("completionId") is { ValueKind: JsonValueKind.String } c && c.GetString() == "inbound-1";
        await BusTest.Eventually(() => Task.FromResult(events.Any(IsInbound1)), TimeSpan.FromSeconds(20), "the enrolment.completed event of the inbound completion");
        var published = events.Single(IsInbound1);
        Assert.Equal(Tenant, published.Json.GetProperty("tenantId").GetString());
        Assert.Equal(Tenant, BusTest.Header(published.Props, "tenant-id"));

        // Same idempotency as POST /completions: the same message again changes nothing and is no poison message.
        var eventsBefore = await BusTest.AllEvents(Service);
        await BusTest.Publish(channel, "enrolment.completions", body, tenantHeader);
        // A later message as a marker that the listener got that far.
        await BusTest.Publish(channel, "enrolment.completions",
            Scenarios.ToJson(new { completionId = "inbound-2", userId = "u2", contentId = content, completedAt = BusTest.Now() }), tenantHeader);
        await BusTest.Eventually(async () => (await BusTest.View(Service, E("u2")))?.Status == EnrolmentStatus.Complete, TimeSpan.FromSeconds(20), "u2 completed by the marker message");
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.Equal(eventsBefore.Count + 1, (await BusTest.AllEvents(Service)).Count); // u2's completion only
        Assert.Single((await BusTest.Events(Service, E("u1"))).OfType<EnrolmentCompleted>());
        Assert.Equal(0u, (await channel.QueueDeclarePassiveAsync("enrolment.completions")).MessageCount);
        Assert.Equal(0u, (await channel.QueueDeclarePassiveAsync("enrolment.completions.dead-letter")).MessageCount);
        // The completions from the broker kept the audit chain in their transactions.
        await AuditChecks.AssertIntact(Service.Services, Tenant);
    }

    [Fact]
    public async Task An_inbound_completion_with_the_tenant_only_in_the_body_completes_an_enrolment()
    {
        await using var connection = await fixture.Factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var events = await BusTest.Subscribe(channel);

        var (audience, content) = BusTest.NewAudienceAndContent();
        var assignment = await BusTest.Assign(Service, fixture.Auth, audience, content, ["u1"]);
        var e1 = Ids.EnrolmentId(Tenant, assignment, "u1");

        // RecordCompletion documents the tenant as "tenantId in the body and/or the tenant-id header".
        await BusTest.Publish(channel, "enrolment.completions", Scenarios.ToJson(new
        {
            tenantId = Tenant, completionId = "body-tenant-1", userId = "u1", contentId = content, completedAt = BusTest.Now(),
        }));

        await BusTest.Eventually(async () => (await BusTest.View(Service, e1))?.Status == EnrolmentStatus.Complete, TimeSpan.FromSeconds(10),
            "u1 completed by the inbound message (tenant in the body only)", () => BusTest.WhereIsCompletion(Service, "body-tenant-1"));
        Assert.Equal("body-tenant-1", (await BusTest.Events(Service, e1)).OfType<EnrolmentCompleted>().Single().CompletionId);
        Assert.Equal([Tenant], await BusTest.CompletionRecordTenants(Service, "body-tenant-1"));
        bool IsCompleted(BusTest.Delivery d) => d.Json.GetProperty("eventType").GetString() == "enrolment.completed" && d.Json.GetProperty("enrolmentId").GetString() == e1.ToString();
        await BusTest.Eventually(() => Task.FromResult(events.Any(IsCompleted)), TimeSpan.FromSeconds(20), "the enrolment.completed event on the exchange");
        Assert.Equal(Tenant, BusTest.Header(events.Single(IsCompleted).Props, "tenant-id"));
    }

    [Fact]
    public async Task Malformed_inbound_messages_land_in_the_dead_letter_queue_and_change_nothing()
    {
        await using var connection = await fixture.Factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();

        var (audience, content) = BusTest.NewAudienceAndContent();
        var assignment = await BusTest.Assign(Service, fixture.Auth, audience, content, ["u1"]);
        var e1 = Ids.EnrolmentId(Tenant, assignment, "u1");
        await channel.QueuePurgeAsync("enrolment.completions.dead-letter");
        var eventsBefore = await BusTest.AllEvents(Service);
        var tenantHeader = new Dictionary<string, object?> { ["tenant-id"] = Tenant };

        await BusTest.Publish(channel, "enrolment.completions", "{not json", tenantHeader);
        await BusTest.Publish(channel, "enrolment.completions", Scenarios.ToJson(new
        {
            completionId = "not a valid id!", userId = "u1", contentId = content, completedAt = BusTest.Now(),
        }), tenantHeader);

        var dead = new List<(string Body, string? Exception)>();
        await BusTest.Eventually(async () =>
        {
            while (await channel.BasicGetAsync("enrolment.completions.dead-letter", autoAck: true) is { } got)
            {
                var text = Encoding.UTF8.GetString(got.Body.ToArray());
                output.WriteLine($"dead letter: {text}; type={got.BasicProperties.Type}");
                foreach (var h in got.BasicProperties.Headers ?? new Dictionary<string, object?>())
                    output.WriteLine($"  header {h.Key} = {BusTest.Text(h.Value)?.Split('\n')[0]}");
                dead.Add((text, BusTest.Header(got.BasicProperties, "exception-type")));
            }
            return dead.Count >= 2;
        }, TimeSpan.FromSeconds(20), "both malformed messages in enrolment.completions.dead-letter",
            async () => [$"dead so far: {string.Join(" | ", dead.Select(d => d.Body))}", .. await BusTest.WolverineDeadLetters(Service)]);

        Assert.Equal(2, dead.Count);
        Assert.Contains(("{not json", "System.Text.Json.JsonException"), dead);
        Assert.Contains(dead, d => d.Body.Contains("not a valid id!") && d.Exception == "Enrolment.Api.Features.Completions.InvalidMessageException");

        // Nothing else changed: no event appended, the enrolment still open, the inbound queue drained.
        Assert.Equal(eventsBefore, await BusTest.AllEvents(Service));
        Assert.Equal(EnrolmentStatus.Open, (await BusTest.View(Service, e1))!.Status);
        Assert.Equal(0u, (await channel.QueueDeclarePassiveAsync("enrolment.completions")).MessageCount);
    }
}

// ---------------------------------------------------------------------------------------------------- fixtures

/// <summary>A service host on a freshly reset database, with one tenant and an all-scopes secret.</summary>
public abstract class BusFixture : IAsyncLifetime
{
    public const string Tenant = "eu-west-2_BusTenant1";
    public IAlbaHost Service { get; private set; } = null!;
    public string Auth { get; private set; } = "";
    protected readonly List<IAsyncDisposable> Disposables = [];

    public abstract Task InitializeAsync();

    public virtual async Task DisposeAsync()
    {
        for (var i = Disposables.Count - 1; i >= 0; i--)
        {
            try { await Disposables[i].DisposeAsync(); }
            catch { /* a failed stop must not hide the test results */ }
        }
    }

    protected async Task StartService(Action<IWebHostBuilder>? configure = null)
    {
        // The PostgreSQL server is shared with other test runs: keep this file's connection pools small.
        Service = await AppFixture.StartHost(transitions: false, b =>
        {
            b.UseSetting("ConnectionStrings:Enrolment", SmallPool(AppFixture.ConnectionString, 20));
            configure?.Invoke(b);
        });
        Disposables.Add(Service);
        await TestData.Reset(Service.Services);
        Auth = await TestTenants.CreateWithAllScopes(Service.Services, Tenant);
    }

    public static string SmallPool(string connectionString, int max) =>
        new NpgsqlConnectionStringBuilder(connectionString) { MaxPoolSize = max }.ConnectionString;
}

/// <summary>The service on the embedded default bus, and a second Wolverine application listening to its events queue.</summary>
public sealed class EmbeddedBusFixture : BusFixture
{
    public ReceivedBusMessages Consumer { get; } = new();

    public override async Task InitializeAsync()
    {
        await StartService();
        // Every other test of the run also publishes to this queue, and nothing consumes it: start from an empty
        // queue so the consumer does not have to drain thousands of older events first.
        await using (var connection = new NpgsqlConnection(AppFixture.ConnectionString))
        {
            await connection.OpenAsync();
            await using var purge = new NpgsqlCommand("delete from wolverine_queues.wolverine_queue_enrolment_events", connection);
            await purge.ExecuteNonQueryAsync();
        }
        var host = await Microsoft.Extensions.Hosting.Host.CreateDefaultBuilder()
            .ConfigureLogging(l => l.ClearProviders())
            .UseWolverine(opts =>
            {
                opts.ApplicationAssembly = typeof(EmbeddedBusFixture).Assembly;
                opts.UseRuntimeCompilation();
                opts.Durability.Mode = DurabilityMode.Solo;
                // Its own envelope storage, the service's queue tables.
                opts.UsePostgresqlPersistenceAndTransport(SmallPool(AppFixture.ConnectionString, 5), "bus_consumer_test", transportSchema: "wolverine_queues");
                // The consumer's own choice: poll the queue every 200 ms when idle (Wolverine's default is 5 s).
                opts.ListenToPostgresqlQueue("enrolment_events").PollingInterval(TimeSpan.FromMilliseconds(200));
                opts.Discovery.DisableConventionalDiscovery().IncludeType(typeof(BusTestConsumer));
                opts.UseSystemTextJsonForSerialization(Json.Configure);
                opts.Services.AddSingleton(Consumer);
            })
            .StartAsync();
        Disposables.Add(new StoppingHost(host));
    }

    private sealed class StoppingHost(IHost host) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await host.StopAsync();
            host.Dispose();
        }
    }
}

/// <summary>The service with Bus:Transport=rabbitmq, in a RabbitMQ virtual host created for this class and deleted after.</summary>
public class RabbitMqBusFixture : BusFixture
{
    private const string Broker = "127.0.0.1";
    private const string ManagementApi = "http://127.0.0.1:15672/api";
    private readonly string _vhost = $"enrolment-bus-test-{Guid.NewGuid():N}";
    public ConnectionFactory Factory { get; private set; } = null!;

    public override async Task InitializeAsync()
    {
        using (var http = Management())
        {
            var created = await http.PutAsync($"{ManagementApi}/vhosts/{_vhost}", new StringContent("{}", Encoding.UTF8, "application/json"));
            if (!created.IsSuccessStatusCode)
                throw new InvalidOperationException($"Creating RabbitMQ vhost {_vhost} through {ManagementApi}: {(int)created.StatusCode} {await created.Content.ReadAsStringAsync()}. Is ./build/rabbitmq.sh run?");
            var permitted = await http.PutAsync($"{ManagementApi}/permissions/{_vhost}/guest",
                new StringContent("""{"configure":".*","write":".*","read":".*"}""", Encoding.UTF8, "application/json"));
            if (!permitted.IsSuccessStatusCode) throw new InvalidOperationException($"Granting guest on {_vhost}: {(int)permitted.StatusCode}");
        }
        await StartService(b =>
        {
            b.UseSetting("Bus:Transport", "rabbitmq");
            b.UseSetting("Bus:RabbitMq:Uri", $"amqp://guest:guest@{Broker}:5672/{_vhost}");
            ConfigureService(b);
        });
        Factory = new ConnectionFactory { HostName = Broker, Port = 5672, UserName = "guest", Password = "guest", VirtualHost = _vhost };
    }

    /// <summary>For a fixture that needs more of the service (TracingTests adds an exporter).</summary>
    protected virtual void ConfigureService(IWebHostBuilder builder) { }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        try { using var http = Management(); await http.DeleteAsync($"{ManagementApi}/vhosts/{_vhost}"); }
        catch { /* best effort */ }
    }

    private static HttpClient Management()
    {
        var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("guest:guest")));
        return http;
    }
}

// ---------------------------------------------------------------------------------------------------- helpers

public static class BusTest
{
    public sealed record Delivery(string RoutingKey, IReadOnlyBasicProperties Props, byte[] Body, JsonElement Json);

    public static string Now() => Json.Format(SystemClock.Instance.GetCurrentInstant());

    /// <summary>Each test enrols its own audience in its own content, so completions never reach another test's enrolments.</summary>
    public static (string Audience, string Content) NewAudienceAndContent()
    {
        var id = Guid.NewGuid().ToString("N")[..12];
        return ($"staff-{id}", $"content-{id}");
    }

    /// <summary>Creates an audience and an assignment through the API and waits for the enrolments to exist.</summary>
    public static async Task<Guid> Assign(IAlbaHost host, string auth, string audience, string content, string[] users)
    {
        (await host.Send(HttpMethod.Put, $"/audiences/{audience}/members", auth, Scenarios.ToJson(new { userIds = users }))).AssertStatus(202);
        var created = (await host.Send(HttpMethod.Post, "/assignments", auth, Scenarios.ToJson(new { audienceId = audience, primaryContentId = content }))).AssertStatus(201);
        var id = Guid.Parse(created.Json["assignment"]!["id"]!.GetValue<string>());
        await Eventually(async () =>
        {
            await using var session = host.Services.GetRequiredService<IDocumentStore>().QuerySession(BusFixture.Tenant);
            return await session.Query<EnrolmentState>().CountAsync(v => v.AssignmentId == id) == users.Length;
        }, TimeSpan.FromSeconds(20), "enrolments created by the fan-out");
        return id;
    }

    /// <summary>Starts n calls together and waits for all of them.</summary>
    public static async Task<ApiResponse[]> AllAtOnce(int n, Func<Task<ApiResponse>> call)
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var calls = Enumerable.Range(0, n).Select(async _ => { await gate.Task; return await call(); }).ToArray();
        gate.SetResult();
        return await Task.WhenAll(calls);
    }

    public static async Task<EnrolmentState?> View(IAlbaHost host, Guid enrolmentId)
    {
        await using var session = host.Services.GetRequiredService<IDocumentStore>().QuerySession(BusFixture.Tenant);
        return await session.LoadAsync<EnrolmentState>(enrolmentId);
    }

    public static async Task<IReadOnlyList<IEnrolmentEvent>> Events(IAlbaHost host, Guid enrolmentId)
    {
        await using var session = host.Services.GetRequiredService<IDocumentStore>().QuerySession(BusFixture.Tenant);
        return (await session.Events.FetchStreamAsync(enrolmentId)).Select(e => (IEnrolmentEvent)e.Data).ToList();
    }

    /// <summary>Every event in the store, all tenants: "tenant stream version type".</summary>
    public static async Task<List<string>> AllEvents(IAlbaHost host)
    {
        var dataSource = host.Services.GetRequiredService<NpgsqlDataSource>();
        await using var command = dataSource.CreateCommand("select tenant_id, stream_id::text, version, type from enrolment.mt_events order by seq_id");
        var all = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync()) all.Add($"{reader.GetString(0)} {reader.GetString(1)} v{reader.GetInt64(2)} {reader.GetString(3)}");
        return all;
    }

    /// <summary>The tenants under which a completion id was recorded, across all tenants.</summary>
    public static async Task<List<string>> CompletionRecordTenants(IAlbaHost host, string completionId)
    {
        var dataSource = host.Services.GetRequiredService<NpgsqlDataSource>();
        await using var command = dataSource.CreateCommand("select tenant_id from enrolment.mt_doc_completionrecord where id = $1 order by tenant_id");
        command.Parameters.AddWithValue(completionId);
        var tenants = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync()) tenants.Add(reader.GetString(0));
        return tenants;
    }

    public static async Task<List<string>> WhereIsCompletion(IAlbaHost host, string completionId) =>
        [$"completion record {completionId} stored under tenant(s) [{string.Join(", ", await CompletionRecordTenants(host, completionId))}]"];

    /// <summary>What Wolverine put in its own dead-letter table (for diagnosis when the RabbitMQ one stays empty).</summary>
    public static async Task<List<string>> WolverineDeadLetters(IAlbaHost host)
    {
        var dataSource = host.Services.GetRequiredService<NpgsqlDataSource>();
        await using var command = dataSource.CreateCommand("select message_type, exception_type, exception_message from enrolment.wolverine_dead_letters");
        var found = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync()) found.Add($"wolverine_dead_letters: {reader.GetValue(0)} {reader.GetValue(1)} {reader.GetValue(2)}");
        return found;
    }

    /// <summary>An exclusive, server-named queue of our own bound to the events exchange with "enrolment.#", consumed as it fills.</summary>
    public static async Task<ConcurrentQueue<Delivery>> Subscribe(IChannel channel)
    {
        var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(queue, "enrolment.events", "enrolment.#");
        var received = new ConcurrentQueue<Delivery>();
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, ea) =>
        {
            var body = ea.Body.ToArray();
            received.Enqueue(new Delivery(ea.RoutingKey, ea.BasicProperties, body, JsonDocument.Parse(body).RootElement.Clone()));
            return Task.CompletedTask;
        };
        await channel.BasicConsumeAsync(queue, autoAck: true, consumer);
        return received;
    }

    /// <summary>Publishes plain JSON straight to a queue (default exchange), as a non-Wolverine producer would.</summary>
    public static async Task Publish(IChannel channel, string queue, string body, IDictionary<string, object?>? headers = null)
    {
        var props = new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent, Headers = headers };
        await channel.BasicPublishAsync("", queue, mandatory: true, props, Encoding.UTF8.GetBytes(body));
    }

    public static string? Text(object? value) => value switch { byte[] b => Encoding.UTF8.GetString(b), null => null, _ => value.ToString() };

    public static string? Header(IReadOnlyBasicProperties props, string name) =>
        props.Headers is { } h && h.TryGetValue(name, out var v) ? Text(v) : null;

    public static async Task Eventually(Func<Task<bool>> condition, TimeSpan timeout, string what, Func<Task<List<string>>>? diagnose = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return;
            await Task.Delay(100);
        }
        var details = diagnose is null ? "" : " Found: " + string.Join("; ", await diagnose());
        Assert.Fail($"Timed out after {timeout.TotalSeconds} s waiting for {what}.{details}");
    }
}

/// <summary>What the consumer host received, in arrival order.</summary>
public sealed class ReceivedBusMessages
{
    private readonly ConcurrentQueue<(EnrolmentStatusChanged Message, Envelope Envelope)> _received = new();

    public void Add(EnrolmentStatusChanged message, Envelope envelope) => _received.Enqueue((message, envelope));

    public List<(EnrolmentStatusChanged Message, Envelope Envelope)> For(Guid enrolmentId) =>
        _received.Where(r => r.Message.EnrolmentId == enrolmentId).ToList();

    public async Task<List<(EnrolmentStatusChanged Message, Envelope Envelope)>> WaitFor(Guid enrolmentId, int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            var got = For(enrolmentId);
            if (got.Count >= count) return got;
            await Task.Delay(50);
        }
        var seen = For(enrolmentId);
        Assert.Fail($"Timed out after {timeout.TotalSeconds} s waiting for {count} EnrolmentStatusChanged for {enrolmentId}; got {seen.Count}: " +
                    string.Join(", ", seen.Select(s => $"{s.Message.EventType} v{s.Message.StreamVersion}")));
        return seen;
    }
}

/// <summary>The consumer host's only handler type: records what arrives.</summary>
public static class BusTestConsumer
{
    public static void Handle(EnrolmentStatusChanged message, Envelope envelope, ReceivedBusMessages sink) => sink.Add(message, envelope);

    public static void Handle(EnrolmentReminderRecorded message) { }
}
