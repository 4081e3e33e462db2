using Enrolment.Domain;
using JasperFx.Events;
using Marten.Events.Aggregation;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>
/// The one document per enrolment, projected inline from its stream by the domain's own fold: a read after a write
/// sees the write, a command loads one row instead of replaying the stream, and the API, the lists, Mimecast and the
/// time-driven transitions all read the same row.
/// </summary>
public sealed partial class EnrolmentProjection : SingleStreamProjection<EnrolmentState, Guid>
{
    public EnrolmentProjection()
    {
        // `projections rebuild -p Enrolment`
        Name = "Enrolment";
        // Evolve alone tells Marten nothing about the events: declared, saves of assignment streams never load an enrolment.
        foreach (var type in EnrolmentEvents.Types) IncludeType(type);
    }

    public override EnrolmentState? Evolve(EnrolmentState? snapshot, Guid id, IEvent e) =>
        e.Data is IEnrolmentEvent data ? EnrolmentState.Fold(snapshot, data) : snapshot;
}
