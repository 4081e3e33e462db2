using Enrolment.Api.Infrastructure;
using OpenTelemetry.Metrics;

namespace Enrolment.Api.Features.Time;

/// <summary>Time-driven transitions: their settings (Transitions:*), the background service that applies them, their lag in /metrics.</summary>
public static class TimeConfiguration
{
    public static void AddTimeDrivenTransitions(this WebApplicationBuilder builder, RunMode mode)
    {
        builder.Services.Configure<TransitionSettings>(builder.Configuration.GetSection("Transitions"));
        builder.Services.ConfigureOpenTelemetryMeterProvider(m => m.AddMeter(TimeDrivenTransitions.Meter.Name));
        if (mode.IsService) builder.Services.AddHostedService<TimeDrivenTransitions>();
    }
}
