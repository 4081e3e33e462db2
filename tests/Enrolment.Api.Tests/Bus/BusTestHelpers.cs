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
