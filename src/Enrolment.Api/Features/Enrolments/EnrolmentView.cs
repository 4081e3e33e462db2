using Enrolment.Domain;
using JasperFx.Events;
using Marten.Events.Aggregation;
using NodaTime;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>
/// The enrolment as the API returns it (PRODUCT.md, "The enrolment"), stored as exactly that JSON so a read is
/// one row by primary key. Projected inline from the stream: a read after a write sees the write.
/// </summary>
public sealed class EnrolmentView
{
    public Guid Id { get; set; }
    public string UserId { get; set; } = "";
    public Guid AssignmentId { get; set; }
    public string AudienceId { get; set; } = "";
    public string PrimaryContentId { get; set; } = "";
    public string Status { get; set; } = "";
    public Instant AvailableDate { get; set; }
    public Instant? DueDate { get; set; }
    public Instant? LastCompletedAt { get; set; }
    public List<EventLogEntry> EventLog { get; set; } = [];
    public Instant UpdatedAt { get; set; }
}

public sealed record EventLogEntry(
    string EventType,
    string? CompletionId,
    string PreviousStatus,
    string NewStatus,
    Instant CreatedAt,
    Instant UpdatedAt);

/// <summary>Folds enrolment events into <see cref="EnrolmentView"/>; the status rules come from the domain.</summary>
public sealed partial class EnrolmentViewProjection : SingleStreamProjection<EnrolmentView, Guid>
{
    public override EnrolmentView? Evolve(EnrolmentView? snapshot, Guid id, IEvent e) =>
        e.Data is IEnrolmentEvent data ? Fold(snapshot, data) : snapshot;

    public static EnrolmentView Fold(EnrolmentView? view, IEnrolmentEvent e)
    {
        var before = view is null ? EnrolmentStatus.Unassigned : Enum.Parse<EnrolmentStatus>(view.Status, ignoreCase: true);
        var after = EnrolmentEvents.StatusAfter(e, before);
        view ??= new EnrolmentView { Id = e.EnrolmentId };
        switch (e)
        {
            case EnrolmentAssigned a:
                view.UserId = a.UserId;
                view.AssignmentId = a.AssignmentId;
                view.AudienceId = a.AudienceId;
                view.PrimaryContentId = a.PrimaryContentId;
                view.AvailableDate = a.AvailableDate;
                view.DueDate = a.DueDate;
                break;
            case EnrolmentOpened o:
                view.AvailableDate = o.AvailableDate;
                view.DueDate = o.DueDate;
                break;
            case EnrolmentRescheduled r:
                view.AvailableDate = r.AvailableDate;
                view.DueDate = r.DueDate;
                break;
            case EnrolmentReinstated r:
                view.AudienceId = r.AudienceId;
                view.AvailableDate = r.AvailableDate;
                view.DueDate = r.DueDate;
                break;
            case EnrolmentCompleted c:
                view.LastCompletedAt = c.CompletedAt;
                break;
        }
        view.Status = EnrolmentRules.Lower(after);
        view.EventLog.Add(new EventLogEntry(EnrolmentEvents.EventType(e), EnrolmentEvents.CompletionId(e),
            EnrolmentRules.Lower(before), EnrolmentRules.Lower(after), e.At, e.At));
        view.UpdatedAt = e.At;
        return view;
    }
}

/// <summary>The write model, rebuilt live from the stream on each command (streams are short).</summary>
public sealed class EnrolmentStateProjection : SingleStreamProjection<EnrolmentState, Guid>
{
    public override EnrolmentState? Evolve(EnrolmentState? snapshot, Guid id, IEvent e) =>
        e.Data is IEnrolmentEvent data ? EnrolmentState.Fold(snapshot, data) : snapshot;
}
