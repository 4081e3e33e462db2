using Enrolment.Api.Features.Messaging;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Alba;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Features.Webhooks;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Contracts;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Wolverine;
using Wolverine.Runtime;
using Wolverine.Util;

namespace Enrolment.Api.Tests;

/// <summary>A host that delivers webhooks to loopback receivers, with the pauses and the 24-hour window shrunk to seconds.</summary>
public sealed class WebhookHostFixture : IAsyncLifetime
{
    public const string DisableAfter = "00:00:06";
    public IAlbaHost Host { get; private set; } = null!;

    public Task InitializeAsync() => Start();

    /// <summary>How long a node reuses a tenant's webhook list here (2 s in production): POST /webhooks answers after it.</summary>
    public const string SubscriptionCacheTime = "00:00:01";

    public async Task Start() => Host = await StartNode();

    /// <summary>A node that delivers webhooks; a second one on the same database is another node of the service.</summary>
    public static Task<IAlbaHost> StartNode(Action<IWebHostBuilder>? configure = null) => AppFixture.StartHost(transitions: false, builder =>
    {
        builder.UseSetting("Webhooks:Enabled", "true");
        builder.UseSetting("Webhooks:AllowPrivateTargets", "true");
        builder.UseSetting("Webhooks:FirstRetryDelay", "00:00:00.200");
        builder.UseSetting("Webhooks:MaxRetryDelay", "00:00:01.600");
        builder.UseSetting("Webhooks:DisableAfter", DisableAfter);
        builder.UseSetting("Webhooks:PollInterval", "00:00:00.100");
        builder.UseSetting("Webhooks:Timeout", "00:00:05");
        builder.UseSetting("Webhooks:SubscriptionCacheTime", SubscriptionCacheTime);
        configure?.Invoke(builder);
    });

    /// <summary>Stops the service host (as a deployment would) and starts a new one on the same database.</summary>
    public async Task Restart()
    {
        await Host.DisposeAsync();
        await Start();
    }

    public async Task DisposeAsync() => await Host.DisposeAsync();
}

/// <summary>Webhooks end to end: the real host, a real PostgreSQL, and real HTTP receivers on loopback ports.</summary>
public sealed class WebhookDeliveryTests(AppFixture fixture, WebhookHostFixture hooks) : ApiTest(fixture), IClassFixture<WebhookHostFixture>
{
    private IAlbaHost Service => hooks.Host;
    private string Auth => Basic(TenantId, AllSecret);

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        await using var command = Service.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand("truncate enrolment.webhook_deliveries");
        await command.ExecuteNonQueryAsync();
        // The reset deleted the previous test's webhooks behind the service's back; its cached list would outlive them.
        Service.Services.GetRequiredService<Features.Webhooks.WebhookSubscriptionCache>().Changed(TenantId);
    }

    [Fact]
    public async Task Every_change_is_delivered_once_signed_in_order_per_enrolment_with_the_bus_body()
    {
        await using var receiver = await WebhookReceiver.Start();
        var (id, secret) = await Subscribe(receiver.Url);

        var (assignment, content) = await Assign(["u1", "u2"]);
        await Complete("c-1", "u1", content);
        (await Service.Send(HttpMethod.Post, $"/assignments/{assignment}/enrolments/{E(assignment, "u2")}/reminders", Auth)).AssertStatus(200);

        var got = await WaitFor(receiver, 4);
        Assert.All(got, r => Assert.True(r.SignatureValid(secret), $"signature {r.Header("x-hmac-signature")} does not verify"));
        Assert.All(got, r => Assert.Equal(id, r.Header("x-webhook-id")));
        Assert.All(got, r => Assert.Equal("1", r.Header("x-delivery-attempt")));
        Assert.Equal(4, got.Select(r => r.Header("x-delivery-id")).Distinct().Count());
        Assert.All(got, r => Assert.StartsWith("application/json", r.Header("content-type")));

        var u1 = got.Where(r => r.EnrolmentId == E(assignment, "u1")).ToList();
        Assert.Equal(["enrolment.assigned", "enrolment.completed"], u1.Select(r => r.Json.GetProperty("eventType").GetString()));
        Assert.Equal([1L, 2L], u1.Select(r => r.StreamVersion));
        // The body is the bus contract's JSON, nothing wrapped around it.
        var completed = JsonSerializer.Deserialize<EnrolmentStatusChanged>(u1[1].Body, Json.Options)!;
        Assert.Equal("c-1", completed.CompletionId);
        Assert.Equal(IntegrationEvents.MessageId(TenantId, completed.EnrolmentId, 2), completed.MessageId);
        Assert.Equal("enrolment.completed", u1[1].Header("x-event-type"));
        var reminder = got.Single(r => r.Header("x-event-type") == "enrolment.reminded");
        Assert.Equal(1, JsonSerializer.Deserialize<EnrolmentReminderRecorded>(reminder.Body, Json.Options)!.ReminderNumber);
        Assert.Equal(typeof(EnrolmentReminderRecorded).FullName, reminder.Header("x-message-type"));

        // GET …/deliveries lists each with its attempt: instant, status, duration. The sender records a delivery after the
        // receiver has answered, so the receiver can hold all four a moment before the last is marked delivered.
        var deliveries = (await Service.Send(HttpMethod.Get, $"/webhooks/{id}/deliveries", Auth)).AssertStatus(200).Json;
        for (var i = 0; i < 100 && deliveries["items"]!.AsArray().Any(d => d!["status"]!.GetValue<string>() == "pending"); i++)
        {
            await Task.Delay(50);
            deliveries = (await Service.Send(HttpMethod.Get, $"/webhooks/{id}/deliveries", Auth)).AssertStatus(200).Json;
        }
        var items = deliveries["items"]!.AsArray();
        Assert.Equal(4, items.Count);
        Assert.Equal(got.Select(r => r.Header("x-delivery-id")).Order(), items.Select(i => i!["id"]!.GetValue<string>()).Order());
        foreach (var item in items)
        {
            Assert.Equal("delivered", item!["status"]!.GetValue<string>());
            var attempt = item["attempts"]!.AsArray().Single()!;
            Assert.Equal(200, attempt["statusCode"]!.GetValue<int>());
            Assert.Matches(Scenarios.InstantFormat, attempt["at"]!.GetValue<string>());
            // A receiver on loopback answering at once: a duration within the 30 s a delivery may take, not a timestamp or a tick count.
            Assert.InRange(attempt["durationMs"]!.GetValue<double>(), 0, 30_000);
        }
        Assert.Null(deliveries["nextCursor"]);

        // Paged like the lists: limit and an opaque cursor, every delivery once.
        var first = (await Service.Send(HttpMethod.Get, $"/webhooks/{id}/deliveries?limit=3", Auth)).AssertStatus(200).Json;
        var second = (await Service.Send(HttpMethod.Get, $"/webhooks/{id}/deliveries?limit=3&cursor={first.Str("nextCursor")}", Auth)).AssertStatus(200).Json;
        Assert.Equal(3, first["items"]!.AsArray().Count);
        Assert.Single(second["items"]!.AsArray());
        Assert.Null(second["nextCursor"]);
        (await Service.Send(HttpMethod.Get, $"/webhooks/{id}/deliveries?cursor=bm9wZQ", Auth)).AssertProblem(422);

        // Nothing more: one delivery per event and subscription.
        await Task.Delay(1000);
        Assert.Equal(4, receiver.Received.Count);
    }

    [Fact]
    public async Task A_webhook_gets_only_the_event_types_it_asked_for()
    {
        await using var all = await WebhookReceiver.Start();
        await using var completions = await WebhookReceiver.Start();
        await Subscribe(all.Url);
        await Subscribe(completions.Url, ["enrolment.completed"]);

        var (_, content) = await Assign(["u1", "u2"]);
        await Complete("c-1", "u1", content);

        await WaitFor(all, 3);
        var only = await WaitFor(completions, 1);
        await Task.Delay(1000);
        Assert.Equal("enrolment.completed", Assert.Single(completions.Received).Header("x-event-type"));
        Assert.Equal(3, all.Received.Count);
        Assert.Equal("c-1", only[0].Json.GetProperty("completionId").GetString());
    }

    [Fact]
    public async Task Only_events_a_subscription_wants_enter_the_webhook_queue_while_the_bus_gets_every_one()
    {
        // Envelopes of the webhook recorder's durable local queue, and rows of the bus's events queue, about one enrolment.
        async Task<(long Webhook, long Bus)> Rows(Guid enrolment)
        {
            await using var command = Service.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand(
                "select (select count(*) from enrolment.wolverine_incoming_envelopes where received_at = 'local://webhooks/' and position(convert_to($1, 'UTF8') in body) > 0), " +
                "(select count(*) from wolverine_queues.wolverine_queue_enrolment_events where position(convert_to($1, 'UTF8') in body) > 0)");
            command.Parameters.AddWithValue(enrolment.ToString());
            await using var reader = await command.ExecuteReaderAsync();
            await reader.ReadAsync();
            return (reader.GetInt64(0), reader.GetInt64(1));
        }

        // No subscription: the assignment's events go to the bus only.
        var (assignment, content) = await Assign(["u1"]);
        var u1 = E(assignment, "u1");
        Assert.Equal((0L, 1L), await Rows(u1));

        // A subscription to completions only: the completion enters the webhook queue, a reminder does not.
        await using var receiver = await WebhookReceiver.Start();
        await Subscribe(receiver.Url, ["enrolment.completed"]);
        (await Service.Send(HttpMethod.Post, $"/assignments/{assignment}/enrolments/{u1}/reminders", Auth)).AssertStatus(200);
        Assert.Equal((0L, 2L), await Rows(u1));
        await Complete("c-only", "u1", content);
        var got = await WaitFor(receiver, 1);
        Assert.Equal("enrolment.completed", got[0].Header("x-event-type"));
        Assert.Equal(3L, got[0].StreamVersion);
        Assert.Equal((1L, 3L), await Rows(u1));
    }

    [Fact]
    public async Task A_failing_receiver_is_retried_with_growing_pauses_and_gets_everything_in_order_per_enrolment_once_it_recovers()
    {
        await using var receiver = await WebhookReceiver.Start();
        var failUntil = DateTime.UtcNow + TimeSpan.FromSeconds(4);
        receiver.Answer = _ => DateTime.UtcNow < failUntil ? 503 : 200;
        var (id, secret) = await Subscribe(receiver.Url);

        string[] users = ["u1", "u2", "u3"];
        var (assignment, content) = await Assign(users);
        foreach (var u in users) await Complete($"c-{u}", u, content);
        foreach (var u in users) (await Service.Send(HttpMethod.Post, $"/assignments/{assignment}/enrolments/{E(assignment, u)}/reminders", Auth)).AssertStatus(200);

        await WaitFor(receiver, 9, r => r.Ok);
        var all = receiver.Received.ToList();
        Assert.Contains(all, r => r.Answered == 503);
        Assert.All(all, r => Assert.True(r.SignatureValid(secret)));
        foreach (var u in users)
        {
            var mine = all.Where(r => r.EnrolmentId == E(assignment, u)).ToList();
            // In order: no later version reaches the receiver before every earlier one was accepted.
            var accepted = 0L;
            foreach (var r in mine)
            {
                Assert.True(r.StreamVersion <= accepted + 1, $"{u}: version {r.StreamVersion} sent while {accepted + 1} was not yet accepted");
                if (r.Ok) accepted = Math.Max(accepted, r.StreamVersion);
            }
            Assert.Equal([1L, 2L, 3L], mine.Where(r => r.Ok).Select(r => r.StreamVersion));
            // Every retry of one delivery keeps its id and counts its attempts.
            foreach (var delivery in mine.GroupBy(r => r.Header("x-delivery-id")))
                Assert.Equal(Enumerable.Range(1, delivery.Count()).Select(n => n.ToString()), delivery.Select(r => r.Header("x-delivery-attempt")));
        }

        // The pauses grow (200 ms doubling to 1.6 s here): the first retry comes soon, later ones further apart.
        var head = all.Where(r => r.Header("x-delivery-id") == all[0].Header("x-delivery-id")).Select(r => r.At).ToList();
        Assert.True(head.Count >= 4, $"expected at least 4 attempts of the first delivery in 4 s, got {head.Count}");
        var gaps = head.Zip(head.Skip(1), (a, b) => (b - a).TotalMilliseconds).ToList();
        Assert.True(gaps[2] > gaps[0] * 1.5, $"pauses do not grow: {string.Join(", ", gaps.Select(g => $"{g:0} ms"))}");

        var webhook = (await Service.Send(HttpMethod.Get, $"/webhooks/{id}", Auth)).AssertStatus(200).Json;
        Assert.Equal("active", webhook.Str("status"));
        var failed = (await Service.Send(HttpMethod.Get, $"/webhooks/{id}/deliveries", Auth)).Json["items"]!.AsArray()
            .Select(i => i!["attempts"]!.AsArray()).First(a => a.Count > 1);
        Assert.Equal(503, failed[0]!["statusCode"]!.GetValue<int>());
    }

    [Fact]
    public async Task A_webhook_failing_for_the_whole_window_is_disabled_with_its_reason_and_enabling_it_delivers_what_it_missed_in_order()
    {
        await using var receiver = await WebhookReceiver.Start();
        receiver.Answer = _ => 500;
        var (id, secret) = await Subscribe(receiver.Url);
        var (assignment, content) = await Assign(["u1"]);

        await BusTest.Eventually(async () => (await Service.Send(HttpMethod.Get, $"/webhooks/{id}", Auth)).Json.Str("status") == "disabled",
            TimeSpan.FromSeconds(30), "the webhook to be disabled after the (shrunk) window");
        var disabled = (await Service.Send(HttpMethod.Get, $"/webhooks/{id}", Auth)).Json;
        Assert.Contains("No 2xx", disabled.Str("disabledReason"));
        Assert.Contains("HTTP 500", disabled.Str("disabledReason"));

        // Changes while disabled are kept, not sent; redeliver is refused until it is enabled.
        await Complete("c-1", "u1", content);
        (await Service.Send(HttpMethod.Post, $"/assignments/{assignment}/enrolments/{E(assignment, "u1")}/reminders", Auth)).AssertStatus(200);
        await Task.Delay(1500);
        var sentWhileDisabled = receiver.Received.Count;
        await Task.Delay(1000);
        Assert.Equal(sentWhileDisabled, receiver.Received.Count);
        var anyDelivery = (await Service.Send(HttpMethod.Get, $"/webhooks/{id}/deliveries", Auth)).Json["items"]![0]!.Str("id");
        (await Service.Send(HttpMethod.Post, $"/webhooks/{id}/deliveries/{anyDelivery}/redeliver", Auth)).AssertProblem(409);

        receiver.Answer = _ => 200;
        var enabled = (await Service.Send(HttpMethod.Post, $"/webhooks/{id}/enable", Auth)).AssertStatus(200).Json;
        Assert.Equal("active", enabled.Str("status"));
        Assert.Null(enabled["disabledReason"]);

        await WaitFor(receiver, 3, r => r.Ok);
        var ok = receiver.Received.Where(r => r.Ok).ToList();
        Assert.Equal([1L, 2L, 3L], ok.Select(r => r.StreamVersion));
        Assert.Equal(["enrolment.assigned", "enrolment.completed", "enrolment.reminded"], ok.Select(r => r.Header("x-event-type")));
        Assert.All(ok, r => Assert.True(r.SignatureValid(secret)));
    }

    [Fact]
    public async Task Deliveries_pending_when_the_service_stops_are_delivered_by_the_next_start()
    {
        await using var receiver = await WebhookReceiver.Start();
        receiver.Answer = _ => 503;
        var (id, secret) = await Subscribe(receiver.Url);
        var (_, content) = await Assign(["u1", "u2"]);
        await Complete("c-1", "u1", content);
        await WaitFor(receiver, 1);

        await hooks.Restart();
        receiver.Answer = _ => 200;

        var ok = await WaitFor(receiver, 3, r => r.Ok, TimeSpan.FromSeconds(60));
        Assert.Equal(3, ok.Select(r => r.Header("x-delivery-id")).Distinct().Count());
        Assert.All(ok, r => Assert.True(r.SignatureValid(secret)));
        Assert.Equal([1L, 2L], ok.Where(r => r.Json.GetProperty("userId").GetString() == "u1").Select(r => r.StreamVersion));
        var items = (await Service.Send(HttpMethod.Get, $"/webhooks/{id}/deliveries", Auth)).AssertStatus(200).Json["items"]!.AsArray();
        Assert.All(items, i => Assert.Equal("delivered", i!.Str("status")));
    }

    /// <summary>
    /// The crash path: version 1 of an enrolment is left in the inbox owned by a node that died (what kill -9 leaves), while
    /// version 2 arrives fresh. Version 2 must wait in the inbox, not be delivered, until version 1 is recovered (here released
    /// as Wolverine's orphan sweep releases a dead node's envelopes) and recorded; then both arrive, in order.
    /// </summary>
    [Fact]
    public async Task A_later_version_waits_while_an_earlier_one_is_stuck_in_a_dead_node_s_inbox_and_both_arrive_in_order_after_its_recovery()
    {
        await using var receiver = await WebhookReceiver.Start();
        var (id, secret) = await Subscribe(receiver.Url);
        var runtime = Service.Services.GetRequiredService<IWolverineRuntime>();
        var inbox = Service.Services.GetRequiredService<WolverineInbox>();
        var enrolment = Guid.NewGuid();
        var (v1, v2) = (Change(enrolment, 1, "enrolment.assigned"), Change(enrolment, 2, "enrolment.completed"));
        const int deadNode = 2_000_000_001;

        var queue = runtime.Endpoints.EndpointByName(RecordWebhookDeliveriesHandler.Queue)!;
        var serializer = runtime.Options.DefaultSerializer;
        var stuck = new Envelope(v1)
        {
            // With the tenant, as every integration event is sent: Wolverine keeps it in the tenant's shard's inbox.
            Id = RecordWebhookDeliveriesHandler.InboxId(v1.MessageId), Destination = queue.Uri, Status = EnvelopeStatus.Incoming, OwnerId = deadNode, TenantId = TenantId,
            ContentType = serializer.ContentType, MessageType = typeof(EnrolmentStatusChanged).ToMessageTypeName(), SentAt = DateTimeOffset.UtcNow,
        };
        stuck.Data = serializer.Write(stuck);
        await runtime.Storage.Inbox.StoreIncomingAsync(stuck);
        Assert.True(await inbox.IsWaiting(TenantId, stuck.Id, default), "an unhandled envelope in Wolverine's inbox reads as waiting");
        Assert.False(await inbox.IsWaiting(TenantId, Guid.NewGuid(), default), "an envelope that is not there reads as not waiting");

        // Version 2 through the bus, as a commit sends it: its inbox envelope gets the id derived from the event.
        using (var scope = Service.Services.CreateScope()) await scope.ServiceProvider.GetRequiredService<IMessageBus>().PublishAsync(v2, new DeliveryOptions { TenantId = TenantId });
        var v2Inbox = RecordWebhookDeliveriesHandler.InboxId(v2.MessageId);
        await BusTest.Eventually(async () => await InboxStatus(v2Inbox) == "Scheduled", TimeSpan.FromSeconds(10), "version 2 rescheduled in the inbox behind version 1");
        await Task.Delay(1500);
        Assert.Empty(receiver.Received);
        Assert.Empty((await Service.Send(HttpMethod.Get, $"/webhooks/{id}/deliveries", Auth)).AssertStatus(200).Json["items"]!.AsArray());

        await runtime.Storage.Admin.ReleaseAllOwnershipAsync(deadNode);

        var got = await WaitFor(receiver, 2, timeout: TimeSpan.FromSeconds(30));
        Assert.Equal([1L, 2L], got.Select(r => r.StreamVersion));
        Assert.All(got, r => Assert.True(r.SignatureValid(secret)));
        Assert.False(await inbox.IsWaiting(TenantId, stuck.Id, default), "a handled envelope reads as not waiting");
        Assert.Equal("Handled", await InboxStatus(v2Inbox));
    }

    [Fact]
    public async Task A_redelivery_sends_the_same_delivery_again_with_the_next_attempt_number()
    {
        await using var receiver = await WebhookReceiver.Start();
        var (id, secret) = await Subscribe(receiver.Url);
        await Assign(["u1"]);
        var first = (await WaitFor(receiver, 1))[0];
        var deliveryId = first.Header("x-delivery-id");

        var accepted = (await Service.Send(HttpMethod.Post, $"/webhooks/{id}/deliveries/{deliveryId}/redeliver", Auth)).AssertStatus(202).Json;
        Assert.Equal(deliveryId, accepted.Str("id"));
        var again = (await WaitFor(receiver, 2))[1];
        Assert.Equal(deliveryId, again.Header("x-delivery-id"));
        Assert.Equal("2", again.Header("x-delivery-attempt"));
        Assert.Equal(first.Body, again.Body);
        Assert.True(again.SignatureValid(secret));

        (await Service.Send(HttpMethod.Post, $"/webhooks/{id}/deliveries/{Guid.NewGuid()}/redeliver", Auth)).AssertProblem(404);
        (await Service.Send(HttpMethod.Post, $"/webhooks/{id}/deliveries/nope/redeliver", Auth)).AssertProblem(422);
    }

    [Fact]
    public async Task A_webhook_created_on_one_node_gets_every_change_another_node_makes_after_its_201_even_while_that_node_writes_throughout()
    {
        // Node B: a second node of the service on the same database (no summaries daemon: node A's Solo daemon runs them).
        await using var nodeB = await WebhookHostFixture.StartNode(b => b.UseSetting("Projections:DaemonMode", "Disabled"));
        await using var receiver = await WebhookReceiver.Start();
        var users = Enumerable.Range(0, 60).Select(i => $"u{i}").ToArray();
        var (assignment, _) = await Assign(users);
        async Task Remind(string user) =>
            (await nodeB.Send(HttpMethod.Post, $"/assignments/{assignment}/enrolments/{E(assignment, user)}/reminders", Auth)).AssertStatus(200);

        // Node B writes before the webhook exists, so it holds the tenant's list of webhooks (none) when node A creates one.
        await Remind(users[0]);
        // Node B keeps writing, one reminder after another, while node A creates the webhook and after it answers.
        var started = new System.Collections.Concurrent.ConcurrentDictionary<string, DateTime>();
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            foreach (var user in users[1..^3])
            {
                if (stop.IsCancellationRequested) break;
                started[user] = DateTime.UtcNow;
                await Remind(user);
                await Task.Delay(20);
            }
        });
        await Task.Delay(50);
        var (id, secret) = await Subscribe(receiver.Url, ["enrolment.reminded"]);
        var answered = DateTime.UtcNow;
        // And right after the 201, on node B: the changes an integrator makes to try the new webhook.
        foreach (var user in users[^3..]) { started[user] = DateTime.UtcNow; await Remind(user); }
        stop.Cancel();
        await writer;

        // Every change whose request began after the 201 is delivered, once; what began before may or may not be.
        var expected = started.Where(s => s.Value > answered).Select(s => E(assignment, s.Key)).ToHashSet();
        Assert.True(expected.Count >= 1, "no change was made after the webhook's 201");
        await WaitFor(receiver, expected.Count, r => expected.Contains(r.EnrolmentId), TimeSpan.FromSeconds(30));
        await Task.Delay(500);
        var got = receiver.Received.ToList();
        Assert.All(got, r => Assert.True(r.SignatureValid(secret)));
        Assert.All(got, r => Assert.Equal(id, r.Header("x-webhook-id")));
        Assert.Equal(got.Count, got.Select(r => r.Header("x-delivery-id")).Distinct().Count());
        Assert.Empty(expected.Except(got.Select(r => r.EnrolmentId)));
    }

    [Fact]
    public async Task A_deleted_webhook_gets_nothing_more()
    {
        await using var receiver = await WebhookReceiver.Start();
        var (id, _) = await Subscribe(receiver.Url);
        var (_, content) = await Assign(["u1"]);
        await WaitFor(receiver, 1);
        (await Service.Send(HttpMethod.Delete, $"/webhooks/{id}", Auth)).AssertStatus(204);
        (await Service.Send(HttpMethod.Get, $"/webhooks/{id}", Auth)).AssertProblem(404);
        await Complete("c-1", "u1", content);
        await Task.Delay(1500);
        Assert.Single(receiver.Received);
    }

    private async Task<(string Id, string Secret)> Subscribe(string url, string[]? eventTypes = null)
    {
        var created = (await Service.Send(HttpMethod.Post, "/webhooks", Auth, Scenarios.ToJson(eventTypes is null ? new { url } : new { url, eventTypes }))).AssertStatus(201);
        Assert.Equal("active", created.Json.Str("status"));
        return (created.Json.Str("id"), created.Json.Str("secret"));
    }

    private static EnrolmentStatusChanged Change(Guid enrolment, long version, string eventType) =>
        new(IntegrationEvents.MessageId(TenantId, enrolment, version), 1, TenantId, enrolment, Guid.NewGuid(), "u1", "audience", "content",
            version == 1 ? "unassigned" : "open", version == 1 ? "open" : "complete", eventType, version == 1 ? null : "c-1",
            DateTimeOffset.UtcNow, version, DateTimeOffset.UtcNow, null);

    private async Task<string?> InboxStatus(Guid envelopeId)
    {
        await using var command = Service.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand("select status from enrolment.wolverine_incoming_envelopes where id = $1");
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = envelopeId });
        return (string?)await command.ExecuteScalarAsync();
    }

    private async Task<(Guid Assignment, string Content)> Assign(string[] users)
    {
        var (audience, content) = BusTest.NewAudienceAndContent();
        (await Service.Send(HttpMethod.Put, $"/audiences/{audience}/members", Auth, Scenarios.ToJson(new { userIds = users }))).AssertStatus(202);
        var created = (await Service.Send(HttpMethod.Post, "/assignments", Auth, Scenarios.ToJson(new { audienceId = audience, primaryContentId = content }))).AssertStatus(201);
        var id = Guid.Parse(created.Json["assignment"]!["id"]!.GetValue<string>());
        await BusTest.Eventually(async () =>
        {
            await using var session = Service.Services.GetRequiredService<IDocumentStore>().QuerySession(TenantId);
            return await session.Query<Enrolment.Domain.EnrolmentState>().CountAsync(v => v.AssignmentId == id) == users.Length;
        }, TimeSpan.FromSeconds(20), "enrolments created by the fan-out");
        return (id, content);
    }

    private async Task Complete(string completionId, string user, string content) =>
        (await Service.Send(HttpMethod.Post, "/completions", Auth, Scenarios.ToJson(new { completionId, userId = user, contentId = content, completedAt = BusTest.Now() }))).AssertStatus(200);

    private static Guid E(Guid assignment, string user) => Ids.EnrolmentId(TenantId, assignment, user);

    private static async Task<List<ReceivedWebhook>> WaitFor(WebhookReceiver receiver, int count, Func<ReceivedWebhook, bool>? which = null, TimeSpan? timeout = null)
    {
        which ??= _ => true;
        await BusTest.Eventually(() => Task.FromResult(receiver.Received.Count(which) >= count), timeout ?? TimeSpan.FromSeconds(30),
            $"{count} deliveries (got {receiver.Received.Count(which)})");
        return receiver.Received.Where(which).ToList();
    }
}

/// <summary>The API's answers to bad input and missing scopes, on the shared host (public targets only, no sender).</summary>
public sealed class WebhookApiTests(AppFixture fixture) : ApiTest(fixture)
{
    [Theory]
    [InlineData("http://hooks.example.com/x", "https")]
    [InlineData("https://127.0.0.1/x", "loopback")]
    [InlineData("https://localhost:8443/x", "loopback")]
    [InlineData("https://10.1.2.3/x", "private")]
    [InlineData("https://192.168.0.10/x", "private")]
    [InlineData("https://169.254.169.254/latest/meta-data", "link-local")]
    [InlineData("https://[::1]/x", "loopback")]
    [InlineData("https://[fd00::1]/x", "private")]
    [InlineData("https://user:pw@93.184.215.14/x", "credentials")]
    [InlineData("not a url", "absolute")]
    [InlineData("ftp://93.184.215.14/x", "absolute")]
    public async Task A_target_that_is_not_public_https_is_a_422_unless_configuration_allows_it(string url, string said)
    {
        var problem = (await Host.Send(HttpMethod.Post, "/webhooks", Basic(TenantId, AllSecret), Scenarios.ToJson(new { url }))).AssertProblem(422);
        Assert.Contains(said, problem["errors"]!["url"]![0]!.GetValue<string>());
    }

    [Fact]
    public async Task Unknown_or_empty_event_types_and_malformed_bodies_are_refused()
    {
        var auth = Basic(TenantId, AllSecret);
        var unknown = (await Host.Send(HttpMethod.Post, "/webhooks", auth, Scenarios.ToJson(new { url = "https://93.184.215.14/x", eventTypes = new[] { "enrolment.completed", "enrolment.exploded" } }))).AssertProblem(422);
        Assert.Contains("enrolment.exploded", unknown["errors"]!["eventTypes"]![0]!.GetValue<string>());
        (await Host.Send(HttpMethod.Post, "/webhooks", auth, Scenarios.ToJson(new { url = "https://93.184.215.14/x", eventTypes = Array.Empty<string>() }))).AssertProblem(422);
        (await Host.Send(HttpMethod.Post, "/webhooks", auth, Scenarios.ToJson(new { eventTypes = new[] { "enrolment.completed" } }))).AssertProblem(422);
        (await Host.Send(HttpMethod.Post, "/webhooks", auth, "{\"url\": ")).AssertProblem(400);
        (await Host.Send(HttpMethod.Get, "/webhooks/not-an-id", auth)).AssertProblem(422);
        (await Host.Send(HttpMethod.Get, $"/webhooks/{Guid.NewGuid()}", auth)).AssertProblem(404);
        (await Host.Send(HttpMethod.Post, $"/webhooks/{Guid.NewGuid()}/enable", auth)).AssertProblem(404);
        (await Host.Send(HttpMethod.Get, $"/webhooks/{Guid.NewGuid()}/deliveries", auth)).AssertProblem(404);
    }

    [Fact]
    public async Task A_public_https_target_is_accepted_and_its_secret_is_shown_only_once()
    {
        var auth = Basic(TenantId, AllSecret);
        var created = (await Host.Send(HttpMethod.Post, "/webhooks", auth, Scenarios.ToJson(new { url = "https://93.184.215.14/hooks", eventTypes = new[] { "enrolment.completed" } }))).AssertStatus(201);
        var id = created.Json.Str("id");
        Assert.Equal($"/webhooks/{id}", created.Headers.Location.ToString());
        Assert.StartsWith("whsec_", created.Json.Str("secret"));
        Assert.Equal("active", created.Json.Str("status"));
        Assert.Equal("enrolment.completed", created.Json["eventTypes"]![0]!.GetValue<string>());

        var one = (await Host.Send(HttpMethod.Get, $"/webhooks/{id}", auth)).AssertStatus(200);
        var list = (await Host.Send(HttpMethod.Get, "/webhooks", auth)).AssertStatus(200);
        Assert.Null(one.Json["secret"]);
        Assert.DoesNotContain(created.Json.Str("secret"), list.Body);
        Assert.Equal(id, list.Json["items"]![0]!.Str("id"));

        // Stored sealed, never in clear.
        await using var command = Host.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand("select data::text from enrolment.mt_doc_webhooksubscription");
        Assert.DoesNotContain(created.Json.Str("secret"), (string)(await command.ExecuteScalarAsync())!);

        // Another tenant does not see it.
        var (otherAll, _, _) = await CreateTenant("eu-west-2_OtherTenant9");
        (await Host.Send(HttpMethod.Get, $"/webhooks/{id}", Basic("eu-west-2_OtherTenant9", otherAll))).AssertProblem(404);
        Assert.Empty((await Host.Send(HttpMethod.Get, "/webhooks", Basic("eu-west-2_OtherTenant9", otherAll))).Json["items"]!.AsArray());
    }

    [Fact]
    public async Task Webhooks_need_the_webhooks_scope_which_api_all_includes()
    {
        foreach (var secret in new[] { ReadSecret, WriteSecret })
        {
            (await Host.Send(HttpMethod.Get, "/webhooks", Basic(TenantId, secret))).AssertProblem(403);
            (await Host.Send(HttpMethod.Post, "/webhooks", Basic(TenantId, secret), Scenarios.ToJson(new { url = "https://93.184.215.14/x" }))).AssertProblem(403);
        }
        (await Host.Send(HttpMethod.Get, "/webhooks", null)).AssertProblem(401);
        (await Host.Send(HttpMethod.Get, "/webhooks", Basic(TenantId, AllSecret))).AssertStatus(200);

        var store = Host.Services.GetRequiredService<IDocumentStore>();
        var webhooksOnly = Infrastructure.Auth.Secrets.Generate();
        await using (var session = await store.OpenHome())
        {
            var account = (await session.LoadAsync<Infrastructure.Auth.TenantAccount>(TenantId))!;
            account.Secrets.Add(new Infrastructure.Auth.ApiSecret { SecretId = "hooks", Hash = Infrastructure.Auth.Secrets.Hash(webhooksOnly), Scopes = [Infrastructure.Auth.Scopes.Webhooks], CreatedAt = NodaTime.SystemClock.Instance.GetCurrentInstant() });
            session.Store(account);
            await session.SaveChangesAsync();
        }
        (await Host.Send(HttpMethod.Get, "/webhooks", Basic(TenantId, webhooksOnly))).AssertStatus(200);
        (await Host.Send(HttpMethod.Get, "/users/u1/enrolments", Basic(TenantId, webhooksOnly))).AssertProblem(403);
    }

    [Theory]
    [InlineData("127.0.0.1", true)]
    [InlineData("10.0.0.1", true)]
    [InlineData("172.16.5.4", true)]
    [InlineData("172.32.0.1", false)]
    [InlineData("192.168.1.1", true)]
    [InlineData("169.254.169.254", true)]
    [InlineData("100.64.0.1", true)]
    [InlineData("0.0.0.0", true)]
    [InlineData("224.0.0.1", true)]
    [InlineData("8.8.8.8", false)]
    [InlineData("::1", true)]
    [InlineData("fe80::1", true)]
    [InlineData("fc00::1", true)]
    [InlineData("::ffff:10.0.0.1", true)]
    [InlineData("::ffff:8.8.8.8", false)]
    [InlineData("2606:4700::1111", false)]
    public void Private_addresses_are_recognised(string address, bool isPrivate) =>
        Assert.Equal(isPrivate, WebhookTargets.IsPrivate(IPAddress.Parse(address)));

    [Fact]
    public async Task The_asyncapi_document_is_valid_by_the_asyncapi_parser_and_generated_from_the_contracts()
    {
        var response = (await Host.Send(HttpMethod.Get, "/asyncapi/v1.json", null)).AssertStatus(200);
        var doc = response.Json;
        Assert.Equal("3.0.0", doc.Str("asyncapi"));

        // The payload schemas have exactly the contract's fields, as the bus writes them (camelCase).
        foreach (var type in new[] { typeof(EnrolmentStatusChanged), typeof(EnrolmentReminderRecorded), typeof(RecordCompletion) })
        {
            var properties = doc["components"]!["schemas"]![type.Name]!["properties"]!.AsObject().Select(p => p.Key).Order();
            Assert.Equal(type.GetProperties().Select(p => JsonNamingPolicy.CamelCase.ConvertName(p.Name)).Order(), properties);
        }
        Assert.Equal(Bus.StatusChangedRoutingKey, doc["channels"]!["statusChanged"]!.Str("address"));
        Assert.Equal("enrolment.events", doc["channels"]!["statusChanged"]!["bindings"]!["amqp"]!["exchange"]!.Str("name"));
        Assert.Equal("enrolment_events", doc["channels"]!["embeddedEvents"]!.Str("address"));
        Assert.Contains("tenant", doc["components"]!["schemas"]!["EnrolmentStatusChanged"]!["properties"]!["tenantId"]!.Str("description"));

        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "Enrolment.EventSourced.sln"))) root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("repository root not found");
        var validator = Path.Combine(root, "build", "asyncapi");
        Assert.True(Directory.Exists(Path.Combine(validator, "node_modules", "@asyncapi", "parser")),
            "The AsyncAPI parser is not installed: ./build/test.sh installs it (npm ci in build/asyncapi).");
        var file = Path.Combine(Path.GetTempPath(), $"asyncapi-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, response.Body);
        try
        {
            using var node = Process.Start(new ProcessStartInfo("node", [Path.Combine(validator, "validate.mjs"), file])
            {
                WorkingDirectory = validator, RedirectStandardOutput = true, RedirectStandardError = true,
            })!;
            var output = await node.StandardOutput.ReadToEndAsync() + await node.StandardError.ReadToEndAsync();
            await node.WaitForExitAsync();
            Assert.True(node.ExitCode == 0, $"@asyncapi/parser found errors:\n{output}");
        }
        finally { File.Delete(file); }
    }
}

/// <summary>
/// A delivery continues the trace of the change that caused it: with tracing on, the receiver's <c>traceparent</c> names the
/// trace of the request that made the change (W3C trace context), and its parent span is the service's HTTP client span.
/// </summary>
public sealed class WebhookTraceTests(AppFixture fixture) : ScenarioTest(fixture)
{
    [Fact]
    public async Task A_delivery_carries_the_w3c_trace_context_of_the_change_that_caused_it()
    {
        var spans = new SpanSink();
        await using var host = await TracingTests.StartTraced(spans, b =>
        {
            b.UseSetting("Webhooks:Enabled", "true");
            b.UseSetting("Webhooks:AllowPrivateTargets", "true");
            b.UseSetting("Webhooks:PollInterval", "00:00:00.100");
        });
        await using (var command = host.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand("truncate enrolment.webhook_deliveries"))
            await command.ExecuteNonQueryAsync();
        await using var receiver = await WebhookReceiver.Start();
        var auth = Basic(BusFixture.Tenant, (await CreateTenant(BusFixture.Tenant)).All);
        (await host.Send(HttpMethod.Post, "/webhooks", auth, Scenarios.ToJson(new { url = receiver.Url, eventTypes = new[] { "enrolment.completed" } }))).AssertStatus(201);
        var (audience, content) = BusTest.NewAudienceAndContent();
        await BusTest.Assign(host, auth, audience, content, ["u1"]);

        // The caller's own trace context, as a client that traces sends it.
        var traceId = ActivityTraceId.CreateRandom();
        var callerSpan = ActivitySpanId.CreateRandom();
        var completion = await host.Scenario(s =>
        {
            s.Post.RawJson(Scenarios.ToJson(new { completionId = "traced-hook", userId = "u1", contentId = content, completedAt = BusTest.Now() })).ToUrl("/completions");
            s.IgnoreStatusCode();
            s.WithRequestHeader("Authorization", auth);
            s.WithRequestHeader("traceparent", $"00-{traceId}-{callerSpan}-01");
        });
        Assert.Equal(200, completion.Context.Response.StatusCode);

        await BusTest.Eventually(() => Task.FromResult(receiver.Received.Any(r => r.Ok)), TimeSpan.FromSeconds(30), "the completion's delivery");
        var delivery = receiver.Received.First(r => r.Ok);
        Assert.Equal("enrolment.completed", delivery.Header("x-event-type"));
        var parts = delivery.Header("traceparent").Split('-');
        Assert.Equal(4, parts.Length);
        Assert.Equal("00", parts[0]);
        Assert.Equal(traceId.ToHexString(), parts[1]);
        Assert.NotEqual(callerSpan.ToHexString(), parts[2]);
        // The span the receiver's request hangs from is the service's own, recorded in the same trace.
        var client = await spans.WaitFor(s => s.TraceId == traceId && s.SpanId.ToHexString() == parts[2], "the span that sent the delivery");
        Assert.Equal(ActivityKind.Client, client.Kind);
        var sending = await spans.WaitFor(s => s.TraceId == traceId && s.Source.Name == WebhookSender.Source.Name, "the webhook delivery span");
        Assert.Equal(sending.SpanId, client.ParentSpanId);
    }
}
