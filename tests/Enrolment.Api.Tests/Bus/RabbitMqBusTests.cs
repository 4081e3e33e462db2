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

/// <summary>
/// Webhooks on RabbitMQ: the broker gets every integration event, the webhook recorder's queue only what a subscription
/// wants (before, every event of a deadline also became a recorder inbox row and a handler run on this transport).
/// </summary>
[Collection(BusCollection.Name)]
public sealed class RabbitMqWebhookTests(RabbitMqWebhookTests.Fixture fixture) : IClassFixture<RabbitMqWebhookTests.Fixture>
{
    public sealed class Fixture : RabbitMqBusFixture
    {
        protected override void ConfigureService(IWebHostBuilder builder)
        {
            builder.UseSetting("Webhooks:Enabled", "true");
            builder.UseSetting("Webhooks:AllowPrivateTargets", "true");
            builder.UseSetting("Webhooks:PollInterval", "00:00:00.100");
        }
    }

    [Fact]
    public async Task The_broker_gets_every_event_and_the_webhook_only_the_types_it_asked_for_once_each()
    {
        await using var connection = await fixture.Factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var deliveries = await BusTest.Subscribe(channel);
        await using var receiver = await WebhookReceiver.Start();
        (await fixture.Service.Send(HttpMethod.Post, "/webhooks", fixture.Auth,
            Scenarios.ToJson(new { url = receiver.Url, eventTypes = new[] { "enrolment.completed" } }))).AssertStatus(201);

        var (audience, content) = BusTest.NewAudienceAndContent();
        var assignment = await BusTest.Assign(fixture.Service, fixture.Auth, audience, content, ["u1"]);
        var e1 = Ids.EnrolmentId(BusFixture.Tenant, assignment, "u1");
        (await fixture.Service.Send(HttpMethod.Post, $"/assignments/{assignment}/enrolments/{e1}/reminders", fixture.Auth)).AssertStatus(200);
        (await fixture.Service.Send(HttpMethod.Post, "/completions", fixture.Auth,
            Scenarios.ToJson(new { completionId = "rabbit-hook-1", userId = "u1", contentId = content, completedAt = BusTest.Now() }))).AssertStatus(200);

        List<BusTest.Delivery> Mine() => deliveries.Where(d => d.Json.GetProperty("enrolmentId").GetString() == e1.ToString()).ToList();
        await BusTest.Eventually(() => Task.FromResult(Mine().Count >= 3), TimeSpan.FromSeconds(20), "3 messages for the enrolment on the exchange");
        await BusTest.Eventually(() => Task.FromResult(receiver.Received.Any(r => r.EnrolmentId == e1)), TimeSpan.FromSeconds(20), "the completion's webhook");
        Assert.Equal([1L, 2L, 3L], Mine().Select(d => d.Json.GetProperty("streamVersion").GetInt64()));

        var hook = Assert.Single(receiver.Received, r => r.EnrolmentId == e1);
        Assert.Equal("enrolment.completed", hook.Header("x-event-type"));
        Assert.Equal(3L, hook.StreamVersion);
        // One recorder inbox row for the enrolment, the completion's: the assignment and the reminder never entered it.
        await using var command = fixture.Service.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand(
            "select count(*) from enrolment.wolverine_incoming_envelopes where received_at = 'local://webhooks/' and position(convert_to($1, 'UTF8') in body) > 0");
        command.Parameters.AddWithValue(e1.ToString());
        Assert.Equal(1L, (long)(await command.ExecuteScalarAsync())!);
    }
}
