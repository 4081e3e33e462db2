using JasperFx.Events.Projections;
using Enrolment.Domain;
using Marten;

namespace Enrolment.Api.Features.Assignments;

/// <summary>Assignments: their streams' document, projected inline, found by audience.</summary>
public static class AssignmentsConfiguration
{
    public static void AddAssignments(this WebApplicationBuilder builder) =>
        builder.Services.ConfigureMarten(opts =>
        {
            opts.Events.AddEventTypes([typeof(AssignmentCreated), typeof(AssignmentRemoved)]);
            opts.Projections.Add(new AssignmentProjection(), ProjectionLifecycle.Inline);
            opts.Schema.For<Assignment>().Duplicate(x => x.AudienceId);
        });
}
