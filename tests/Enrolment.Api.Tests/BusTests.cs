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
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
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
/// The integration events and inbound completions on real buses: the embedded default (Wolverine's PostgreSQL
/// queues in the service's own database, read by a second Wolverine host) and RabbitMQ (read and written with the
/// plain RabbitMQ.Client, as a consumer in any language would). Each RabbitMQ test runs in a virtual host of its
/// own, so the documented exchange and queue names are used without meeting another test run on the same broker.
/// </summary>
[Collection(BusCollection.Name)]
public sealed class BusTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Tenant = "eu-west-2_BusTenant1";
    private const string RabbitHost = "127.0.0.1";
    private const string ManagementApi = "http://127.0.0.1:15672/api";
    private string _secret = "";
    private readonly List<IAsyncDisposable> _disposables = [];
    private readonly List<string> _vhosts = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        for (var i = _disposables.Count - 1; i >= 0; i--)
        {
            try { await _disposables[i].DisposeAsync(); }
            catch (Exception e) { output.WriteLine($"dispose: {e.Message}"); }
        }
        foreach (var vhost in _vhosts)
        {
            try { using var http = Management(); await http.DeleteAsync($"{ManagementApi}/vhosts/{Uri.EscapeDataString(vhost)}"); }
            catch (Exception e) { output.WriteLine($"vhost cleanup: {e.Message}"); }
        }
    }

    // ------------------------------------------------------------------ embedded default (PostgreSQL queues)

    [Fact]
    public async Task Embedded_default_a_status_change_is_delivered_to_a_wolverine_consumer_in_a_second_host()
    {
        var service = await StartService();
        var consumer = await StartConsumer();

        var assignment = await Assign(service, ["u1", "u2"]);
        var e1 = Ids.EnrolmentId(Tenant, assignment, "u1");

        var assigned = await consumer.WaitFor(e1, 1, TimeSpan.FromSeconds(20));
        var first = assigned[0].Message;
        Assert.Equal("enrolment.assigned", first.EventType);
        Assert.Equal("unassigned", first.PreviousStatus);
        Assert.Equal("open", first.NewStatus);
        Assert.Null(first.CompletionId);
        Assert.Equal(1, first.StreamVersion);

        var completion = await service.Send(HttpMethod.Post, "/completions", Auth,
            Scenarios.ToJson(new { completionId = "bus-done-1", userId = "u1", contentId = "c1", completedAt = Now() }));
        completion.AssertStatus(200);

        var received = await consumer.WaitFor(e1, 2, TimeSpan.FromSeconds(20));
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
            Assert.Equal("staff", message.AudienceId);
            Assert.Equal("c1", message.PrimaryContentId);
            // The id a consumer deduplicates on is derived from (tenant, enrolment, version): the same on every redelivery.
            Assert.Equal(EnrolmentChanges.MessageId(Tenant, e1, message.StreamVersion), message.MessageId);
            // The tenant travels on the envelope too (the tenant-id header).
            Assert.Equal(Tenant, envelope.TenantId);
        }
        Assert.NotEqual(received[0].Message.MessageId, received[1].Message.MessageId);

        // The consumer sees the same facts the service's own event stream holds.
        var stream = await Events(service, e1);
        Assert.Equal(2, stream.Count);
        Assert.IsType<EnrolmentAssigned>(stream[0]);
        Assert.IsType<EnrolmentCompleted>(stream[1]);

        // And nothing more arrives for that enrolment (a redelivery would carry the same MessageId: deduplicable).
        await Task.Delay(TimeSpan.FromSeconds(2));
        var all = consumer.For(e1);
        Assert.Equal(2, all.Select(m => m.Message.MessageId).Distinct().Count());
        var u2 = consumer.For(Ids.EnrolmentId(Tenant, assignment, "u2"));
        Assert.Equal(["enrolment.assigned"], u2.Select(m => m.Message.EventType));
    }

    [Fact]
    public async Task Embedded_default_concurrent_duplicate_completions_commit_once_and_publish_once()
    {
        var service = await StartService();
        var consumer = await StartConsumer();
        var assignment = await Assign(service, ["u1"]);
        var e1 = Ids.EnrolmentId(Tenant, assignment, "u1");
        await consumer.WaitFor(e1, 1, TimeSpan.FromSeconds(20));

        // Many identical requests race at one open enrolment: each reads "not completed yet" and appends a
        // completion; all but one transaction must fail at commit (stream version / completion record), and
        // whatever they published must vanish with them.
        var body = Scenarios.ToJson(new { completionId = "race-1", userId = "u1", contentId = "c1", completedAt = Now() });
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var requests = Enumerable.Range(0, 8).Select(async _ =>
        {
            await gate.Task;
            return await service.Send(HttpMethod.Post, "/completions", Auth, body);
        }).ToArray();
        gate.SetResult();
        var responses = await Task.WhenAll(requests);
        output.WriteLine("concurrent answers: " + string.Join(", ", responses.Select(r => r.Status)));
        foreach (var r in responses.Where(r => r.Status != 200)) output.WriteLine(r.ToString());

        Assert.Contains(responses, r => r.Status == 200);
        Assert.All(responses, r => Assert.True(r.Status is 200 or 409, $"a lost race answers 200 (replay) or 409, not {r}"));

        var events = await Events(service, e1);
        Assert.Single(events.OfType<EnrolmentCompleted>());
        Assert.Equal(2, events.Count);

        var received = await consumer.WaitFor(e1, 2, TimeSpan.FromSeconds(20));
        Assert.Equal("race-1", received[1].Message.CompletionId);
        // Give a leaked publication from a rolled-back transaction time to show up.
        await Task.Delay(TimeSpan.FromSeconds(3));
        var withCompletion = consumer.For(e1).Where(m => m.Message.CompletionId == "race-1").ToList();
        Assert.Single(withCompletion);
        Assert.Equal(2, consumer.For(e1).Count);
    }

    [Fact]
    public async Task Embedded_default_an_outboxed_session_disposed_without_commit_publishes_nothing()
    {
        var service = await StartService();
        var consumer = await StartConsumer();
        var assignment = await Assign(service, ["u1"]);
        var e1 = Ids.EnrolmentId(Tenant, assignment, "u1");
        await consumer.WaitFor(e1, 1, TimeSpan.FromSeconds(20));

        var runtime = service.Services.GetRequiredService<IWolverineRuntime>();
        var sessions = service.Services.GetRequiredService<OutboxedSessionFactory>();
        var now = SystemClock.Instance.GetCurrentInstant();

        // A completion appended and published in an outboxed session that is never saved: rolled back.
        {
            var context = new MessageContext(runtime);
            await using var session = sessions.OpenSession(context, Tenant);
            var stream = await session.Events.FetchForWriting<EnrolmentState>(e1);
            var decision = EnrolmentRules.Complete(stream.Aggregate!, new Completion("rolled-back", "c1", now, null), now);
            Assert.Single(decision.Events);
            await EnrolmentChanges.Append(stream, decision.Events, context, Tenant);
        }

        // The same path, committed, is the control: it must be delivered (so the consumer was listening).
        {
            var context = new MessageContext(runtime);
            await using var session = sessions.OpenSession(context, Tenant);
            var stream = await session.Events.FetchForWriting<EnrolmentState>(e1);
            var decision = EnrolmentRules.Archive(stream.Aggregate!, ArchiveReason.Explicit, now);
            await EnrolmentChanges.Append(stream, decision.Events, context, Tenant);
            await session.SaveChangesAsync();
        }

        var received = await consumer.WaitFor(e1, 2, TimeSpan.FromSeconds(20));
        Assert.Equal("enrolment.archived", received[1].Message.EventType);
        Assert.Equal("open", received[1].Message.PreviousStatus);
        Assert.Equal(2, received[1].Message.StreamVersion);
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.DoesNotContain(consumer.For(e1), m => m.Message.EventType == "enrolment.completed" || m.Message.CompletionId == "rolled-back");
        Assert.Equal(2, consumer.For(e1).Count);
        var events = await Events(service, e1);
        Assert.Equal(2, events.Count);
        Assert.DoesNotContain(events, e => e is EnrolmentCompleted);
    }

    // ------------------------------------------------------------------ RabbitMQ

    [Fact]
    public async Task RabbitMq_a_plain_client_bound_to_the_exchange_receives_each_status_change_in_order_as_json()
    {
        var (service, factory) = await StartRabbitService();
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();

        // A consumer of our own, not Wolverine: an exclusive server-named queue bound to the documented exchange.
        var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(queue, "enrolment.events", "enrolment.#");
        var deliveries = new ConcurrentQueue<(string RoutingKey, IReadOnlyBasicProperties Props, byte[] Body)>();
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, ea) =>
        {
            deliveries.Enqueue((ea.RoutingKey, ea.BasicProperties, ea.Body.ToArray()));
            return Task.CompletedTask;
        };
        await channel.BasicConsumeAsync(queue, autoAck: true, consumer);

        var assignment = await Assign(service, ["u1"]);
        var e1 = Ids.EnrolmentId(Tenant, assignment, "u1");
        var enrolmentUrl = $"/assignments/{assignment}/enrolments/{e1}";
        (await service.Send(HttpMethod.Post, enrolmentUrl + "/reminders", Auth)).AssertStatus(200);
        (await service.Send(HttpMethod.Post, "/completions", Auth,
            Scenarios.ToJson(new { completionId = "rabbit-done-1", userId = "u1", contentId = "c1", completedAt = Now() }))).AssertStatus(200);
        (await service.Send(HttpMethod.Post, enrolmentUrl + "/archive", Auth)).AssertStatus(200);

        List<(string RoutingKey, IReadOnlyBasicProperties Props, byte[] Body, JsonElement Json)> ForE1() => deliveries
            .Select(d => (d.RoutingKey, d.Props, d.Body, Json: JsonDocument.Parse(d.Body).RootElement))
            .Where(d => d.Json.TryGetProperty("enrolmentId", out var id) && id.GetString() == e1.ToString())
            .ToList();
        await Eventually(() => Task.FromResult(ForE1().Count >= 4), TimeSpan.FromSeconds(20), "4 messages for the enrolment on the exchange");
        var mine = ForE1();
        foreach (var d in mine)
        {
            output.WriteLine($"routing key {d.RoutingKey}; type={d.Props.Type}; content-type={d.Props.ContentType}; message-id={d.Props.MessageId}; " +
                             $"correlation-id={d.Props.CorrelationId}; app-id={d.Props.AppId}; delivery-mode={d.Props.DeliveryMode}");
            foreach (var h in d.Props.Headers ?? new Dictionary<string, object?>())
                output.WriteLine($"  header {h.Key} = {(h.Value is byte[] b ? Encoding.UTF8.GetString(b) : h.Value)}");
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
        string[] expectedFields = ["messageId", "schemaVersion", "tenantId", "enrolmentId", "assignmentId", "userId", "audienceId", "primaryContentId",
            "previousStatus", "newStatus", "eventType", "completionId", "occurredAt", "streamVersion", "availableDate", "dueDate"];
        foreach (var d in statusChanges)
        {
            // Plain camelCase JSON of the contract, nothing wrapped around it.
            Assert.Equal(expectedFields.Order(), d.Json.EnumerateObject().Select(p => p.Name).Order());
            var message = JsonSerializer.Deserialize<EnrolmentStatusChanged>(d.Body, Json.Options)!;
            Assert.Equal(Tenant, message.TenantId);
            Assert.Equal(EnrolmentChanges.MessageId(Tenant, e1, message.StreamVersion), message.MessageId);
            Assert.Equal("application/json", d.Props.ContentType);
            // The message-type information a non-Wolverine consumer can route on.
            Assert.Equal("Enrolment.Contracts.EnrolmentStatusChanged", d.Props.Type);
            Assert.Equal(Tenant, Header(d.Props, "tenant-id"));
        }
        Assert.Equal("rabbit-done-1", statusChanges[1].Json.GetProperty("completionId").GetString());
        Assert.Equal(JsonValueKind.Null, statusChanges[0].Json.GetProperty("completionId").ValueKind);
        var reminder = mine.Single(d => d.RoutingKey == Bus.ReminderRecordedRoutingKey);
        Assert.Equal("Enrolment.Contracts.EnrolmentReminderRecorded", reminder.Props.Type);
        Assert.Equal(1, reminder.Json.GetProperty("reminderNumber").GetInt32());

        // The service's own queue bound with "#" holds the same events for anyone to read.
        var all = await channel.QueueDeclarePassiveAsync("enrolment.events.all");
        Assert.True(all.MessageCount >= 4, $"enrolment.events.all holds {all.MessageCount} messages");
    }

    [Fact]
    public async Task RabbitMq_an_inbound_completion_message_completes_an_enrolment_and_malformed_ones_are_dead_lettered()
    {
        var (service, factory) = await StartRabbitService();
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();

        var assignment = await Assign(service, ["u1", "u2", "u3"]);
        Guid E(string user) => Ids.EnrolmentId(Tenant, assignment, user);

        // Tenant in the body only.
        await Publish(channel, "enrolment.completions", Scenarios.ToJson(new
        {
            tenantId = Tenant, completionId = "inbound-1", userId = "u1", contentId = "c1", completedAt = Now(), answer = 0.9,
        }));
        // Tenant in the tenant-id header only.
        await Publish(channel, "enrolment.completions", Scenarios.ToJson(new
        {
            completionId = "inbound-2", userId = "u2", contentId = "c1", completedAt = Now(),
        }), new Dictionary<string, object?> { ["tenant-id"] = Tenant });

        await Eventually(async () => (await View(service, E("u1")))?.Status == "complete", TimeSpan.FromSeconds(20), "u1 completed by the inbound message");
        await Eventually(async () => (await View(service, E("u2")))?.Status == "complete", TimeSpan.FromSeconds(20), "u2 completed by the inbound message (tenant in header)");
        var completed = (await Events(service, E("u1"))).OfType<EnrolmentCompleted>().Single();
        Assert.Equal("inbound-1", completed.CompletionId);
        Assert.Equal(0.9, completed.Answer);
        Assert.Equal("inbound-2", (await Events(service, E("u2"))).OfType<EnrolmentCompleted>().Single().CompletionId);

        // Same idempotency as POST /completions: a repeat of inbound-1 changes nothing and is not a poison message.
        var eventsBefore = await EventCount(service);

        await Publish(channel, "enrolment.completions", "{not json");
        await Publish(channel, "enrolment.completions", Scenarios.ToJson(new
        {
            tenantId = Tenant, completionId = "not a valid id!", userId = "u3", contentId = "c1", completedAt = Now(),
        }));

        var dead = new List<string>();
        await Eventually(async () =>
        {
            while (await channel.BasicGetAsync("enrolment.completions.dead-letter", autoAck: true) is { } got)
            {
                var text = Encoding.UTF8.GetString(got.Body.ToArray());
                output.WriteLine($"dead letter: {text}; type={got.BasicProperties.Type}");
                foreach (var h in got.BasicProperties.Headers ?? new Dictionary<string, object?>())
                    output.WriteLine($"  header {h.Key} = {(h.Value is byte[] b ? Encoding.UTF8.GetString(b) : h.Value)}");
                dead.Add(text);
            }
            return dead.Count >= 2;
        }, TimeSpan.FromSeconds(20), "both malformed messages in enrolment.completions.dead-letter");

        Assert.Contains("{not json", dead);
        Assert.Contains(dead, d => d.Contains("not a valid id!"));
        Assert.Equal(2, dead.Count);

        // Nothing else changed: no event appended, u3 still open, the inbound queue drained.
        Assert.Equal(eventsBefore, await EventCount(service));
        Assert.Equal("open", (await View(service, E("u3")))!.Status);
        var inbound = await channel.QueueDeclarePassiveAsync("enrolment.completions");
        Assert.Equal(0u, inbound.MessageCount);
    }

    // ------------------------------------------------------------------ helpers

    private string Auth => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Tenant}:{_secret}"));

    private static string Now() => Json.Format(SystemClock.Instance.GetCurrentInstant());

    private async Task<IAlbaHost> StartService(Action<Microsoft.AspNetCore.Hosting.IWebHostBuilder>? configure = null)
    {
        var host = await AppFixture.StartHost(transitions: false, configure);
        _disposables.Add(host);
        var store = host.Services.GetRequiredService<IDocumentStore>();
        await store.Advanced.ResetAllData();
        _secret = Secrets.Generate();
        await using var session = store.LightweightSession();
        var account = new TenantAccount { Id = Tenant, CreatedAt = SystemClock.Instance.GetCurrentInstant() };
        account.Secrets.Add(new ApiSecret { SecretId = "bus1", Hash = Secrets.Hash(_secret), Scopes = [Scopes.All], CreatedAt = account.CreatedAt });
        session.Store(account);
        await session.SaveChangesAsync();
        return host;
    }

    /// <summary>A service host on RabbitMQ, in a fresh virtual host so the documented names meet no other test run.</summary>
    private async Task<(IAlbaHost Service, ConnectionFactory Factory)> StartRabbitService()
    {
        var vhost = $"enrolment-bus-test-{Guid.NewGuid():N}";
        using (var http = Management())
        {
            var created = await http.PutAsync($"{ManagementApi}/vhosts/{vhost}", new StringContent("{}", Encoding.UTF8, "application/json"));
            Assert.True(created.IsSuccessStatusCode, $"creating RabbitMQ vhost {vhost}: {(int)created.StatusCode} {await created.Content.ReadAsStringAsync()}");
            _vhosts.Add(vhost);
            var permitted = await http.PutAsync($"{ManagementApi}/permissions/{vhost}/guest",
                new StringContent("""{"configure":".*","write":".*","read":".*"}""", Encoding.UTF8, "application/json"));
            Assert.True(permitted.IsSuccessStatusCode, $"granting guest on {vhost}: {(int)permitted.StatusCode}");
        }
        var service = await StartService(b =>
        {
            b.UseSetting("Bus:Transport", "rabbitmq");
            b.UseSetting("Bus:RabbitMq:Uri", $"amqp://guest:guest@{RabbitHost}:5672/{vhost}");
        });
        var factory = new ConnectionFactory { HostName = RabbitHost, Port = 5672, UserName = "guest", Password = "guest", VirtualHost = vhost };
        return (service, factory);
    }

    private static HttpClient Management()
    {
        var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("guest:guest")));
        return http;
    }

    private static async Task Publish(IChannel channel, string queue, string body, IDictionary<string, object?>? headers = null)
    {
        var props = new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent, Headers = headers };
        await channel.BasicPublishAsync("", queue, mandatory: true, props, Encoding.UTF8.GetBytes(body));
    }

    private static string? Header(IReadOnlyBasicProperties props, string name) =>
        props.Headers is { } h && h.TryGetValue(name, out var v) ? v switch { byte[] b => Encoding.UTF8.GetString(b), null => null, _ => v.ToString() } : null;

    /// <summary>A second Wolverine application that only listens to the service's PostgreSQL events queue.</summary>
    private async Task<ReceivedBusMessages> StartConsumer()
    {
        var sink = new ReceivedBusMessages();
        var host = await Microsoft.Extensions.Hosting.Host.CreateDefaultBuilder()
            .ConfigureLogging(l => l.ClearProviders())
            .UseWolverine(opts =>
            {
                opts.ApplicationAssembly = typeof(BusTests).Assembly;
                opts.UseRuntimeCompilation();
                opts.Durability.Mode = DurabilityMode.Solo;
                opts.UsePostgresqlPersistenceAndTransport(AppFixture.ConnectionString, "bus_consumer_test", transportSchema: "wolverine_queues");
                opts.ListenToPostgresqlQueue("enrolment_events");
                opts.Discovery.DisableConventionalDiscovery().IncludeType(typeof(BusTestConsumer));
                opts.UseSystemTextJsonForSerialization(Json.Configure);
                opts.Services.AddSingleton(sink);
            })
            .StartAsync();
        _disposables.Add(new AsyncHost(host));
        return sink;
    }

    private sealed class AsyncHost(IHost host) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await host.StopAsync();
            host.Dispose();
        }
    }

    private async Task<Guid> Assign(IAlbaHost host, string[] users)
    {
        (await host.Send(HttpMethod.Put, "/audiences/staff/members", Auth, Scenarios.ToJson(new { userIds = users }))).AssertStatus(202);
        var created = (await host.Send(HttpMethod.Post, "/assignments", Auth, Scenarios.ToJson(new { audienceId = "staff", primaryContentId = "c1" }))).AssertStatus(201);
        var id = Guid.Parse(created.Json["assignment"]!["id"]!.GetValue<string>());
        await Eventually(async () =>
        {
            await using var session = host.Services.GetRequiredService<IDocumentStore>().QuerySession(Tenant);
            return await session.Query<EnrolmentView>().CountAsync(v => v.AssignmentId == id) == users.Length;
        }, TimeSpan.FromSeconds(20), "enrolments created by the fan-out");
        return id;
    }

    private static async Task<EnrolmentView?> View(IAlbaHost host, Guid enrolmentId)
    {
        await using var session = host.Services.GetRequiredService<IDocumentStore>().QuerySession(Tenant);
        return await session.LoadAsync<EnrolmentView>(enrolmentId);
    }

    private static async Task<IReadOnlyList<IEnrolmentEvent>> Events(IAlbaHost host, Guid enrolmentId)
    {
        await using var session = host.Services.GetRequiredService<IDocumentStore>().QuerySession(Tenant);
        return (await session.Events.FetchStreamAsync(enrolmentId)).Select(e => (IEnrolmentEvent)e.Data).ToList();
    }

    private static async Task<long> EventCount(IAlbaHost host)
    {
        var dataSource = host.Services.GetRequiredService<NpgsqlDataSource>();
        await using var command = dataSource.CreateCommand("select count(*) from enrolment.mt_events");
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static async Task Eventually(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return;
            await Task.Delay(100);
        }
        Assert.Fail($"Timed out after {timeout.TotalSeconds} s waiting for {what}.");
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
            await Task.Delay(100);
        }
        var seen = For(enrolmentId);
        Assert.Fail($"Timed out after {timeout.TotalSeconds} s waiting for {count} EnrolmentStatusChanged for {enrolmentId}; got {seen.Count}: " +
                    string.Join(", ", seen.Select(s => $"{s.Message.EventType} v{s.Message.StreamVersion}")));
        return seen;
    }
}

/// <summary>The consumer host's only handler: records what arrives.</summary>
public static class BusTestConsumer
{
    public static void Handle(EnrolmentStatusChanged message, Envelope envelope, ReceivedBusMessages sink) => sink.Add(message, envelope);

    public static void Handle(EnrolmentReminderRecorded message) { }
}
