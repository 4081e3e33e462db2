using NodaTime;

namespace Enrolment.Domain;

/// <summary>
/// A shape an enrolment event was stored in by an earlier version. The store keeps such rows for as long as it keeps
/// history, under the audit hash chain, so they are never rewritten: they are read as today's event instead
/// (docs/architecture.md, "How an event changes shape"). Deliberately not an <see cref="IEnrolmentEvent"/>: the fold,
/// the rules and every writer know today's shapes only, and nothing can append an earlier one.
/// </summary>
public interface IEarlierEventShape
{
    /// <summary>The event as today's shape says it: the same fact, nothing invented.</summary>
    IEnrolmentEvent Upcast();
}

/// <summary>
/// <see cref="ReminderRecorded"/> as stored until commit 44d230f (type name <c>reminder_recorded</c>): its count of the
/// period's reminders was called <c>number</c>, which reads as the reminder's ordinal in the enrolment's whole history.
/// </summary>
public sealed record ReminderRecordedV1(Guid EnrolmentId, int Number, Instant At) : IEarlierEventShape
{
    public IEnrolmentEvent Upcast() => new ReminderRecorded(EnrolmentId, NumberInPeriod: Number, At);
}
