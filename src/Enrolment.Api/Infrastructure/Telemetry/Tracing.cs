using JasperFx.OpenTelemetry;
using Marten;
using Npgsql;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Enrolment.Api.Infrastructure.Telemetry;

/// <summary>
/// OpenTelemetry traces: the HTTP request (ASP.NET Core), its Marten session and SQL statements (Npgsql), the
/// Wolverine handlers and the outbox send to the bus, and outgoing HttpClient calls (which carry `traceparent`).
/// Wolverine stores the trace context with each outbox message and sends it along (`traceparent` on RabbitMQ), so a
/// consumer's spans join the request's trace. On when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set,
/// exported over OTLP with the standard OTEL_* variables; Tracing:Enabled=true records spans without an endpoint
/// (for another exporter, as the tests add one).
/// </summary>
public static class Tracing
{
    public const string DefaultServiceName = "enrolment-api";
    /// <summary>Every ActivitySource of the service itself: a feature area names its own "Enrolment.Api.<area>", and is traced without being listed here.</summary>
    public const string OwnSources = "Enrolment.Api.*";

    public static bool IsEnabled(IConfiguration configuration) =>
        configuration.GetValue<bool?>("Tracing:Enabled") ?? HasOtlpEndpoint(configuration);

    private static bool HasOtlpEndpoint(IConfiguration configuration) =>
        !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]) || !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]);

    public static void AddEnrolmentTracing(this IServiceCollection services, IConfiguration configuration)
    {
        // Off, nothing is recorded: spans for every SQL statement cost CPU this service's benchmarks count.
        if (!IsEnabled(configuration)) return;

        // One span per Marten session's connection, parent of that session's SQL statements.
        services.ConfigureMarten(opts => opts.OpenTelemetry.TrackConnections = TrackLevel.Normal);

        services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(configuration["OTEL_SERVICE_NAME"] is { Length: > 0 } name ? name : DefaultServiceName))
            .WithTracing(t =>
            {
                t.AddAspNetCoreInstrumentation(o =>
                        // Probes and scrapes every few seconds would drown the requests people look for.
                        o.Filter = context => !context.Request.Path.StartsWithSegments("/health") && !context.Request.Path.StartsWithSegments("/metrics"))
                    .AddHttpClientInstrumentation()
                    .AddNpgsql()
                    // The service's own ActivitySources are named "Enrolment.Api.<area>" (webhooks, integration events, ...).
                    .AddSource("Wolverine", "Marten", OwnSources);
                if (HasOtlpEndpoint(configuration)) t.AddOtlpExporter();
            });
    }
}
