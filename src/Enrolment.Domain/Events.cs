using NodaTime;

namespace Enrolment.Domain;

/// <summary>Every event of an enrolment's stream: what happened, and the instant it was recorded.</summary>
public interface IEnrolmentEvent
{
    Guid EnrolmentId { get; }
    Instant At { get; }
}

/// <summary>The user was enrolled; status becomes open when the period is available at <see cref="At"/>, else scheduled.</summary>
public sealed record EnrolmentAssigned(
    Guid EnrolmentId,
    Guid AssignmentId,
    string UserId,
    string AudienceId,
    string PrimaryContentId,
    Schedule Schedule,
    int Period,
    Instant AvailableDate,
    Instant? DueDate,
    Instant At) : IEnrolmentEvent;

/// <summary>A period opened: a scheduled enrolment reached its availableDate, or a recurring one entered its next period.</summary>
public sealed record EnrolmentOpened(Guid EnrolmentId, int Period, Instant AvailableDate, Instant? DueDate, Instant At) : IEnrolmentEvent;

/// <summary>The clock passed <see cref="DueDate"/> with no completion in the period; <see cref="At"/> is when that was noticed.</summary>
public sealed record EnrolmentBecameOverdue(Guid EnrolmentId, int Period, Instant DueDate, Instant At) : IEnrolmentEvent;

/// <summary>A completion of the primary content; <see cref="Late"/> when it came after the due date.</summary>
public sealed record EnrolmentCompleted(
    Guid EnrolmentId,
    string CompletionId,
    string ContentId,
    Instant CompletedAt,
    double? Answer,
    bool Late,
    Instant At) : IEnrolmentEvent;

/// <summary>
/// A reminder was sent to the user: the <see cref="NumberInPeriod"/>th of the current period (counting restarts at 1 in
/// each period; 3 or more put an incomplete enrolment on the watchlist). Stored as <c>reminder_recorded_v2</c>; the first
/// shape, <see cref="ReminderRecordedV1"/>, called the count <c>number</c> and is read as this event.
/// </summary>
public sealed record ReminderRecorded(Guid EnrolmentId, int NumberInPeriod, Instant At) : IEnrolmentEvent;

public sealed record EnrolmentArchived(Guid EnrolmentId, ArchiveReason Reason, Instant At) : IEnrolmentEvent;

/// <summary>An archived enrolment came back (the user rejoined the audience): the same stream, history kept.</summary>
public sealed record EnrolmentReinstated(
    Guid EnrolmentId,
    string AudienceId,
    int Period,
    Instant AvailableDate,
    Instant? DueDate,
    Instant At) : IEnrolmentEvent;

/// <summary>A completed recurring period ended and the next one opens later: status becomes scheduled.</summary>
public sealed record EnrolmentRescheduled(Guid EnrolmentId, int Period, Instant AvailableDate, Instant? DueDate, Instant At) : IEnrolmentEvent;

/// <summary>The current period was waived (an exemption, e.g. the user already holds the certificate): complete without a completion.</summary>
public sealed record EnrolmentWaived(Guid EnrolmentId, int Period, string Reason, Instant At) : IEnrolmentEvent;

/// <summary>The current period's due date moved from <see cref="PreviousDueDate"/> to <see cref="DueDate"/>; an overdue enrolment is open again.</summary>
public sealed record EnrolmentExtended(Guid EnrolmentId, int Period, Instant? PreviousDueDate, Instant DueDate, string Reason, Instant At) : IEnrolmentEvent;

public static class EnrolmentEvents
{
    /// <summary>
    /// Every enrolment event type with its eventLog eventType (part of the public contract): the one list the event
    /// store's registrations, the projection's filter, the change feed and the webhooks' eventTypes derive from.
    /// </summary>
    private static readonly (Type Type, string Name)[] Catalogue =
    [
        (typeof(EnrolmentAssigned), "enrolment.assigned"),
        (typeof(EnrolmentOpened), "enrolment.opened"),
        (typeof(EnrolmentBecameOverdue), "enrolment.overdue"),
        (typeof(EnrolmentCompleted), "enrolment.completed"),
        (typeof(ReminderRecorded), "enrolment.reminded"),
        (typeof(EnrolmentArchived), "enrolment.archived"),
        (typeof(EnrolmentReinstated), "enrolment.reinstated"),
        (typeof(EnrolmentRescheduled), "enrolment.rescheduled"),
        (typeof(EnrolmentWaived), "enrolment.waived"),
        (typeof(EnrolmentExtended), "enrolment.extended"),
    ];

    /// <summary>
    /// The shapes earlier versions stored (<see cref="IEarlierEventShape"/>), each with today's event type it is read as.
    /// Written by nothing; the event store upcasts them on read.
    /// </summary>
    public static IReadOnlyList<(Type Shape, Type ReadAs)> EarlierShapes { get; } =
    [
        (typeof(ReminderRecordedV1), typeof(ReminderRecorded)),
    ];

    private static readonly Dictionary<Type, string> Names = Catalogue.ToDictionary(c => c.Type, c => c.Name);

    /// <summary>The enrolment event types (the CLR types), in the order of the lifecycle.</summary>
    public static IReadOnlyList<Type> Types { get; } = Catalogue.Select(c => c.Type).ToArray();

    /// <summary>The eventLog eventType values, in the same order.</summary>
    public static IReadOnlyList<string> EventTypes { get; } = Catalogue.Select(c => c.Name).ToArray();

    /// <summary>The eventLog's eventType for each event, part of the public contract.</summary>
    public static string EventType(IEnrolmentEvent e) =>
        Names.TryGetValue(e.GetType(), out var name) ? name : throw new ArgumentOutOfRangeException(nameof(e), e.GetType().Name, "Unknown enrolment event");

    /// <summary>The status an enrolment has after <paramref name="e"/>, given the status it had before.</summary>
    public static EnrolmentStatus StatusAfter(IEnrolmentEvent e, EnrolmentStatus before) => e switch
    {
        EnrolmentAssigned a => a.AvailableDate <= a.At ? EnrolmentStatus.Open : EnrolmentStatus.Scheduled,
        EnrolmentOpened => EnrolmentStatus.Open,
        EnrolmentBecameOverdue => EnrolmentStatus.Overdue,
        EnrolmentCompleted => EnrolmentStatus.Complete,
        ReminderRecorded => before,
        EnrolmentArchived => EnrolmentStatus.Archived,
        EnrolmentReinstated r => r.AvailableDate <= r.At ? EnrolmentStatus.Open : EnrolmentStatus.Scheduled,
        EnrolmentRescheduled => EnrolmentStatus.Scheduled,
        EnrolmentWaived => EnrolmentStatus.Complete,
        // Only open or overdue enrolments are extended, and only to a due date still ahead: open either way.
        EnrolmentExtended => EnrolmentStatus.Open,
        _ => throw new ArgumentOutOfRangeException(nameof(e), e.GetType().Name, "Unknown enrolment event"),
    };

    public static string? CompletionId(IEnrolmentEvent e) => (e as EnrolmentCompleted)?.CompletionId;

    /// <summary>The reason recorded with a waiver or an extension, else null.</summary>
    public static string? Reason(IEnrolmentEvent e) => e switch
    {
        EnrolmentWaived w => w.Reason,
        EnrolmentExtended x => x.Reason,
        _ => null,
    };
}
