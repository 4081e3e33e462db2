namespace Enrolment.Contracts;

/// <summary>
/// Published once for every committed change of an enrolment's status (schema version 1).
/// Delivery is at least once: deduplicate on <see cref="MessageId"/>; within one enrolment,
/// <see cref="StreamVersion"/> increases with every change, so a consumer can also drop stale ones.
/// </summary>
/// <param name="MessageId">Stable id of this event: the same on every redelivery. Derived from tenant, enrolment and stream version.</param>
/// <param name="SchemaVersion">1. A breaking change gets a new message type, not a new meaning for this one.</param>
/// <param name="TenantId">The tenant the enrolment belongs to (also in the tenant-id header).</param>
/// <param name="EnrolmentId">The enrolment (one user in one assignment).</param>
/// <param name="AssignmentId">The assignment.</param>
/// <param name="UserId">The user, as the tenant's systems know them.</param>
/// <param name="AudienceId">The audience through which the user is enrolled.</param>
/// <param name="PrimaryContentId">The content to complete.</param>
/// <param name="PreviousStatus">unassigned (first event only), scheduled, open, overdue, complete or archived.</param>
/// <param name="NewStatus">scheduled, open, overdue, complete or archived.</param>
/// <param name="EventType">What happened: enrolment.assigned, .opened, .overdue, .completed, .archived, .reinstated, .rescheduled,
/// .waived (an exemption: complete without a completion) or .extended (the due date moved later; overdue becomes open).</param>
/// <param name="CompletionId">The client's completion id when a completion caused the change, else null.</param>
/// <param name="OccurredAt">When the change was recorded (UTC).</param>
/// <param name="StreamVersion">The version of the enrolment's stream after this change (1 for the first event).</param>
/// <param name="AvailableDate">The current period's available date after the change (UTC).</param>
/// <param name="DueDate">The current period's due date after the change (UTC), or null if there is none.</param>
/// <param name="Reason">The reason recorded with a waiver or an extension; null for every other event type.</param>
public sealed record EnrolmentStatusChanged(
    Guid MessageId,
    int SchemaVersion,
    string TenantId,
    Guid EnrolmentId,
    Guid AssignmentId,
    string UserId,
    string AudienceId,
    string PrimaryContentId,
    string PreviousStatus,
    string NewStatus,
    string EventType,
    string? CompletionId,
    DateTimeOffset OccurredAt,
    long StreamVersion,
    DateTimeOffset AvailableDate,
    DateTimeOffset? DueDate,
    string? Reason = null);

/// <summary>Published once for every committed reminder (schema version 1). The status does not change.</summary>
/// <param name="MessageId">Stable id of this event, the same on every redelivery.</param>
/// <param name="SchemaVersion">1.</param>
/// <param name="TenantId">The tenant.</param>
/// <param name="EnrolmentId">The enrolment.</param>
/// <param name="AssignmentId">The assignment.</param>
/// <param name="UserId">The user.</param>
/// <param name="Status">The enrolment's status, unchanged by the reminder.</param>
/// <param name="ReminderNumber">How many reminders this period, this one included.</param>
/// <param name="OnWatchlist">True when the enrolment is not complete and has had 3 or more reminders this period.</param>
/// <param name="OccurredAt">When the reminder was recorded (UTC).</param>
/// <param name="StreamVersion">The version of the enrolment's stream after this reminder.</param>
public sealed record EnrolmentReminderRecorded(
    Guid MessageId,
    int SchemaVersion,
    string TenantId,
    Guid EnrolmentId,
    Guid AssignmentId,
    string UserId,
    string Status,
    int ReminderNumber,
    bool OnWatchlist,
    DateTimeOffset OccurredAt,
    long StreamVersion);

/// <summary>
/// Inbound: a user completed a content item (schema version 1). Same rules and idempotency as POST /completions:
/// the same <see cref="CompletionId"/> twice changes nothing the second time.
/// </summary>
/// <param name="TenantId">The tenant; may instead (or also) be sent in the tenant-id header.</param>
/// <param name="CompletionId">The client's idempotency key, 1–64 characters of [A-Za-z0-9._:@-].</param>
/// <param name="UserId">The user.</param>
/// <param name="ContentId">The content item completed.</param>
/// <param name="CompletedAt">When the user completed it (ISO-8601 with offset).</param>
/// <param name="Answer">Optional numeric answer or score.</param>
public sealed record RecordCompletion(
    string? TenantId,
    string? CompletionId,
    string? UserId,
    string? ContentId,
    DateTimeOffset? CompletedAt,
    double? Answer);
