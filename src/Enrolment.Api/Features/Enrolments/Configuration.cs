using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using JasperFx.Events.Projections;
using Marten;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>Enrolments: the one document per enrolment (inline projection), its table's columns, the writer's lock rows and guard.</summary>
public static class EnrolmentsConfiguration
{
    public static void AddEnrolments(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<EnrolmentTable>();
        builder.Services.AddHostedService<OneProjectionGuard>();
        builder.Services.ConfigureMarten(opts =>
        {
            // The event types, their stored names and the earlier shapes read as today's events.
            StoredEnrolmentEvents.Configure(opts);
            // One document per enrolment: the domain's own fold, projected inline (EnrolmentProjection). Rebuilds
            // (`projections rebuild`) read events in large pages and write each document once per flush window rather
            // than once per page: a stream's three events usually fall in one window.
            opts.Projections.Add(new EnrolmentProjection(), ProjectionLifecycle.Inline, rebuild =>
            {
                rebuild.BatchSize = 5_000;
                rebuild.RebuildFlushThreshold = 20_000;
            });
            EnrolmentTable.Configure(opts);
            // The one writer's serialization points: users, audiences, assignments (EnrolmentWriter).
            opts.Storage.ExtendedSchemaObjects.Add(WriteLockRows.Table());
        });
    }
}
