using Enrolment.Api.Infrastructure;
using OpenTelemetry.Metrics;

namespace Enrolment.Api.Features.Time;

/// <summary>Time-driven transitions: their settings (Transitions:*), the Wolverine agents that apply them (one per shard), their lag in /metrics.</summary>
public static class TimeConfiguration
{
    public static void AddTimeDrivenTransitions(this WebApplicationBuilder builder, RunMode mode)
    {
        builder.Services.Configure<TransitionSettings>(builder.Configuration.GetSection("Transitions"));
        builder.Services.ConfigureOpenTelemetryMeterProvider(m => m.AddMeter(TimeDrivenTransitions.Meter.Name));
        builder.Services.AddSingleton<TimeDrivenTransitions>();
        // One Wolverine agent per shard, placed on the nodes by Wolverine's leader (TransitionAgentFamily).
        if (mode.IsService) builder.Services.AddSingleton<Wolverine.Runtime.Agents.IAgentFamily, TransitionAgentFamily>();
    }
}
