using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Sql;
using Marten;
using OpenTelemetry.Metrics;

namespace Enrolment.Api.Features.Changes;

/// <summary>The change feed: its transaction-id table and triggers on mt_events, the enrolment event names it lists, its lag in /metrics.</summary>
public static class ChangesConfiguration
{
    public static void AddChangeFeed(this WebApplicationBuilder builder, RunMode mode)
    {
        builder.Services.ConfigureMarten(ChangeFeedSchema.Register);
        builder.Services.AddSingleton<ChangeFeedEventTypes>();
        builder.Services.ConfigureOpenTelemetryMeterProvider(m => m.AddMeter(ChangeFeedMetrics.Meter.Name));
        if (mode.IsService) builder.Services.AddHostedService<ChangeFeedMetrics>();
    }
}
