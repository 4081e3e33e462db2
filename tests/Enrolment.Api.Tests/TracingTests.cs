using System.Collections.Concurrent;
using System.Diagnostics;
using Alba;
using Enrolment.Domain;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Trace;
using Xunit.Abstractions;

namespace Enrolment.Api.Tests;

/// <summary>
/// Traces: the spans of one POST /completions, caught by OpenTelemetry's in-memory exporter inside the real host, form
/// one trace from the HTTP request through Marten and its SQL to the publication of the integration event.
/// </summary>
public sealed class TracingTests(AppFixture fixture, ITestOutputHelper output) : ScenarioTest(fixture)
{
    [Fact]
    public async Task One_completion_is_one_trace_from_the_http_request_through_marten_and_npgsql_to_the_published_message()
    {
        var spans = new SpanSink();
        await using var host = await StartTraced(spans);
        // BusTest's helpers read this tenant's enrolments.
        var auth = Basic(BusFixture.Tenant, (await CreateTenant(BusFixture.Tenant)).All);
        var (audience, content) = BusTest.NewAudienceAndContent();
        var assignment = await BusTest.Assign(host, auth, audience, content, ["u1"]);
        spans.Clear();

        (await host.Send(HttpMethod.Post, "/completions", auth,
            Scenarios.ToJson(new { completionId = "traced-1", userId = "u1", contentId = content, completedAt = BusTest.Now() }))).AssertStatus(200);

        var request = await spans.WaitFor(s => s.Kind == ActivityKind.Server && s.GetTagItem("http.route") as string == "/completions", "the HTTP server span");
        var sent = await spans.WaitFor(s => s.TraceId == request.TraceId && IsSendOf(s, "EnrolmentStatusChanged"), "the send of EnrolmentStatusChanged in the request's trace");
        var trace = spans.InTrace(request.TraceId);
        Print(trace, request);

        // The SQL of the request: the event appended and the completion record inserted, by Npgsql, under Marten's session.
        var sql = trace.Where(s => s.Source.Name == "Npgsql").ToList();
        Assert.Contains(sql, s => Statement(s).Contains("mt_quick_append_events", StringComparison.OrdinalIgnoreCase));
        Assert.Contains(sql, s => Statement(s).Contains("mt_doc_completionrecord", StringComparison.OrdinalIgnoreCase));
        Assert.Contains(trace, s => s.Source.Name == "Marten");
        // Every span of the trace hangs from the request, none is a root of its own.
        foreach (var span in trace.Where(s => s != request))
            Assert.True(Reaches(span, request, trace), $"{span.Source.Name} '{span.DisplayName}' is not under the request span");
        Assert.True(Reaches(sent, request, trace));
        Assert.Contains(sent.TagObjects, t => t.Value?.ToString() == Ids.EnrolmentId(BusFixture.Tenant, assignment, "u1").ToString() || t.Key.Contains("destination", StringComparison.Ordinal));
    }

    internal static Task<IAlbaHost> StartTraced(SpanSink spans, Action<IWebHostBuilder>? configure = null) =>
        AppFixture.StartHost(transitions: false, b =>
        {
            b.UseSetting("Tracing:Enabled", "true");
            b.ConfigureServices(s => s.ConfigureOpenTelemetryTracerProvider(t => t.AddProcessor(new SimpleActivityExportProcessor(spans))));
            configure?.Invoke(b);
        });

    // Wolverine's send (RabbitMQ, the webhook queue) or the service's own write of the embedded queue's rows.
    internal static bool IsSendOf(Activity span, string messageType) =>
        span.Source.Name is "Wolverine" or "Enrolment.Api.IntegrationEvents" && span.Kind == ActivityKind.Producer
        && span.TagObjects.Any(t => t.Value is string v && v.EndsWith(messageType, StringComparison.Ordinal));

    private static string Statement(Activity span) =>
        (span.GetTagItem("db.query.text") ?? span.GetTagItem("db.statement")) as string ?? span.DisplayName;

    internal static bool Reaches(Activity span, Activity root, IReadOnlyList<Activity> trace)
    {
        var byId = trace.ToDictionary(s => s.SpanId);
        for (var current = span; current is not null; current = byId.GetValueOrDefault(current.ParentSpanId))
            if (current.SpanId == root.SpanId) return true;
        return false;
    }

    private void Print(IReadOnlyList<Activity> trace, Activity root)
    {
        void Walk(Activity span, int depth)
        {
            output.WriteLine($"{new string(' ', depth * 2)}{span.Source.Name}: {span.DisplayName} ({span.Kind}, {span.Duration.TotalMilliseconds:0.0} ms)");
            foreach (var child in trace.Where(s => s.ParentSpanId == span.SpanId).OrderBy(s => s.StartTimeUtc)) Walk(child, depth + 1);
        }
        Walk(root, 0);
        foreach (var orphan in trace.Where(s => s != root && !Reaches(s, root, trace)))
            output.WriteLine($"not under the request: {orphan.Source.Name}: {orphan.DisplayName} ({orphan.Kind})");
    }
}

/// <summary>The same trace on RabbitMQ: the AMQP message's traceparent names the request's trace, so a consumer's spans join it.</summary>
[Collection(BusCollection.Name)]
public sealed class RabbitMqTracingTests(RabbitMqTracingTests.Fixture fixture, ITestOutputHelper output) : IClassFixture<RabbitMqTracingTests.Fixture>
{
    public sealed class Fixture : RabbitMqBusFixture
    {
        public SpanSink Spans { get; } = new();

        protected override void ConfigureService(IWebHostBuilder builder)
        {
            builder.UseSetting("Tracing:Enabled", "true");
            builder.ConfigureServices(s => s.ConfigureOpenTelemetryTracerProvider(t => t.AddProcessor(new SimpleActivityExportProcessor(Spans))));
        }
    }

    [Fact]
    public async Task A_completion_s_trace_reaches_the_rabbitmq_message_as_its_traceparent()
    {
        await using var connection = await fixture.Factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var deliveries = await BusTest.Subscribe(channel);
        var (audience, content) = BusTest.NewAudienceAndContent();
        var assignment = await BusTest.Assign(fixture.Service, fixture.Auth, audience, content, ["u1"]);
        var enrolment = Ids.EnrolmentId(BusFixture.Tenant, assignment, "u1").ToString();

        (await fixture.Service.Send(HttpMethod.Post, "/completions", fixture.Auth,
            Scenarios.ToJson(new { completionId = "traced-rabbit-1", userId = "u1", contentId = content, completedAt = BusTest.Now() }))).AssertStatus(200);
        BusTest.Delivery? Completed() => deliveries.FirstOrDefault(d => d.Json.GetProperty("enrolmentId").GetString() == enrolment
                                                                       && d.Json.GetProperty("eventType").GetString() == "enrolment.completed");
        await BusTest.Eventually(() => Task.FromResult(Completed() is not null), TimeSpan.FromSeconds(20), "the completed event on RabbitMQ");

        var request = await fixture.Spans.WaitFor(s => s.Kind == ActivityKind.Server && s.GetTagItem("http.route") as string == "/completions"
                                                       && s.TagObjects.Any(t => t.Key == "http.response.status_code" && t.Value?.ToString() == "200"), "the HTTP server span");
        var props = Completed()!.Props;
        foreach (var h in props.Headers ?? new Dictionary<string, object?>()) output.WriteLine($"header {h.Key} = {BusTest.Text(h.Value)}");
        // Wolverine's header for the W3C trace context of the send (version-traceid-spanid-flags, as in traceparent).
        var parent = BusTest.Header(props, "parent-id");
        Assert.False(string.IsNullOrEmpty(parent), "The AMQP message carries the trace context (parent-id header)");
        Assert.Equal(request.TraceId.ToHexString(), parent!.Split('-')[1]);
        var trace = fixture.Spans.InTrace(request.TraceId);
        Assert.Contains(trace, s => TracingTests.IsSendOf(s, "EnrolmentStatusChanged") && TracingTests.Reaches(s, request, trace));
    }
}

/// <summary>An exporter that keeps every finished span, for the test to search while the host runs.</summary>
public sealed class SpanSink : BaseExporter<Activity>
{
    private readonly ConcurrentQueue<Activity> _spans = new();

    public override ExportResult Export(in Batch<Activity> batch)
    {
        foreach (var span in batch) _spans.Enqueue(span);
        return ExportResult.Success;
    }

    public void Clear() => _spans.Clear();

    public IReadOnlyList<Activity> InTrace(ActivityTraceId traceId) => _spans.Where(s => s.TraceId == traceId).ToList();

    public async Task<Activity> WaitFor(Func<Activity, bool> match, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            if (_spans.FirstOrDefault(match) is { } found) return found;
            await Task.Delay(50);
        }
        throw new Xunit.Sdk.XunitException($"No span found within 20 s: {what}. Spans seen: " +
                                           string.Join("; ", _spans.Select(s => $"{s.Source.Name}:{s.DisplayName}({s.Kind})").Distinct().Take(60)));
    }
}
