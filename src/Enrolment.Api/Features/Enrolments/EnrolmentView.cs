using Enrolment.Domain;
using NodaTime;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>
/// The enrolment as the API returns it (PRODUCT.md, "The enrolment"): a function of <see cref="EnrolmentState"/>, never
/// a fold of its own. Reads by id and lists do not build it: they send the stored state's JSON with every property this
/// type does not have removed in SQL (<see cref="Infrastructure.Sql.EnrolmentTable"/>), so this type is also
/// the definition of which stored properties are public.
/// </summary>
public sealed record EnrolmentView(
    Guid Id,
    string UserId,
    Guid AssignmentId,
    string AudienceId,
    string PrimaryContentId,
    EnrolmentStatus Status,
    Instant AvailableDate,
    Instant? DueDate,
    Instant? LastCompletedAt,
    IReadOnlyList<EventLogEntry> EventLog,
    Instant UpdatedAt)
{
    public static EnrolmentView From(EnrolmentState s) => new(s.Id, s.UserId, s.AssignmentId, s.AudienceId, s.PrimaryContentId, s.Status,
        s.AvailableDate, s.DueDate, s.LastCompletedAt, s.EventLog, s.UpdatedAt);
}
