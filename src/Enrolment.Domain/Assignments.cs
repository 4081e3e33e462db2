using NodaTime;

namespace Enrolment.Domain;

/// <summary>"Audience X must complete content Y" on a schedule. Assignments are event-sourced too, for the audit.</summary>
public sealed record AssignmentCreated(Guid AssignmentId, string AudienceId, string PrimaryContentId, Schedule Schedule, Instant At);

/// <summary>The assignment was removed: every enrolment in it becomes archived.</summary>
public sealed record AssignmentRemoved(Guid AssignmentId, Instant At);
