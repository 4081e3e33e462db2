using Enrolment.Api.Infrastructure;
using JasperFx.Events.Projections;
using Marten;
using OpenTelemetry.Metrics;

namespace Enrolment.Api.Features.Summaries;

/// <summary>
/// Summaries: an asynchronous projection (Marten's async daemon, placed on the nodes by Projections:DaemonMode in
/// Infrastructure/Persistence.cs) and the lag it reports in /metrics.
/// </summary>
public static class SummariesConfiguration
{
    public static void AddSummaries(this WebApplicationBuilder builder, RunMode mode)
    {
        builder.Services.ConfigureMarten(opts =>
        {
            opts.Projections.Add(new SummaryProjection(), ProjectionLifecycle.Async, SummaryProjection.Name,
                o => { o.DeleteViewTypeOnTeardown<EnrolmentSummary>(); o.DeleteViewTypeOnTeardown<EnrolmentStanding>(); });
            opts.Schema.For<EnrolmentStanding>();
            opts.Schema.For<EnrolmentSummary>();
        });
        builder.Services.ConfigureOpenTelemetryMeterProvider(m => m.AddMeter(SummaryLag.MeterName));
        if (mode.IsService) builder.Services.AddHostedService<SummaryLag>();
    }
}
