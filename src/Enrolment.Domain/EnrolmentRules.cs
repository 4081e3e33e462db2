using NodaTime;

namespace Enrolment.Domain;

/// <summary>Why a command was refused. The HTTP layer maps each kind to one status code.</summary>
public enum RejectionKind
{
    /// <summary>The enrolment's current status does not allow this (409).</summary>
    Conflict,
    /// <summary>The command itself is invalid (422).</summary>
    Invalid,
}

public sealed record Rejection(RejectionKind Kind, string Code, string Message);

/// <summary>What a command decided: the events to append (possibly none: nothing to do), or a rejection.</summary>
public sealed record Decision(IReadOnlyList<IEnrolmentEvent> Events, Rejection? Rejection = null)
{
    public static readonly Decision Nothing = new([]);
    public static Decision Of(params IEnrolmentEvent[] events) => new(events);
    public static Decision Reject(RejectionKind kind, string code, string message) => new([], new Rejection(kind, code, message));
    public bool IsRejected => Rejection is not null;
}

public sealed record Completion(string CompletionId, string ContentId, Instant CompletedAt, double? Answer);

/// <summary>
/// Every transition of PRODUCT.md's lifecycle table, decided in one place as pure functions of
/// (state, command, now). Read it against the table:
///
///   unassigned → scheduled | open      Assign
///   scheduled  → open                  Tick (availableDate reached)
///   open       → overdue               Tick (dueDate passed, no completion in the period)
///   open       → complete              Complete (on time)
///   overdue    → complete              Complete (late)
///   complete   → scheduled             Tick (recurring: the period's dueDate passed, next period opens later)
///   complete | overdue → open          Tick (recurring: next period's availableDate reached)
///   any but archived → archived        Archive
///   archived   → scheduled | open      Reinstate
///   overdue    → open                  Extend (the due date moves past now)
///   open | overdue → complete          Waive (an exemption for the current period)
///
/// Reminders never change the status; neither does extending an open enrolment, nor a completion recorded after a
/// waiver in the same period (it is still recorded: lastCompletedAt, enrolment.completed). Anything else is no event, or a rejection.
/// </summary>
public static class EnrolmentRules
{
    /// <summary>Catch-up bound: how many time-driven transitions one tick may emit (e.g. after long downtime).</summary>
    public const int MaxTransitionsPerTick = 64;

    /// <summary>unassigned → scheduled | open: enrol a user, in the period current at <paramref name="now"/>.</summary>
    public static EnrolmentAssigned Assign(Guid enrolmentId, Guid assignmentId, string userId, string audienceId, string primaryContentId, Schedule schedule, Instant now)
    {
        var period = schedule.PeriodAt(now);
        return new EnrolmentAssigned(enrolmentId, assignmentId, userId, audienceId, primaryContentId, schedule,
            period, schedule.OpensAt(period), schedule.DueAt(period), now);
    }

    /// <summary>
    /// unassigned → scheduled | open, then the completions recorded before the enrolment existed
    /// (<see cref="ApplyEarlierCompletions"/>): the events that start a new enrolment's stream.
    /// </summary>
    public static IReadOnlyList<IEnrolmentEvent> Enrol(Guid enrolmentId, Guid assignmentId, string userId, string audienceId, string primaryContentId, Schedule schedule,
        IEnumerable<Completion> recordedBefore, Instant now)
    {
        var assigned = Assign(enrolmentId, assignmentId, userId, audienceId, primaryContentId, schedule, now);
        return [assigned, .. ApplyEarlierCompletions(EnrolmentState.Fold(null, assigned), recordedBefore, now)];
    }

    /// <summary>Reinstate, then the completions recorded while the enrolment was archived or before (<see cref="ApplyEarlierCompletions"/>).</summary>
    public static Decision Rejoin(EnrolmentState state, string audienceId, IEnumerable<Completion> recordedBefore, Instant now)
    {
        var reinstated = Reinstate(state, audienceId, now);
        if (reinstated.Events.Count == 0) return reinstated;
        var after = reinstated.Events.Aggregate(state, EnrolmentState.Fold);
        return new Decision([.. reinstated.Events, .. ApplyEarlierCompletions(after, recordedBefore, now)]);
    }

    /// <summary>archived → scheduled | open: the user rejoined. Anything not archived stays as it is.</summary>
    public static Decision Reinstate(EnrolmentState state, string audienceId, Instant now)
    {
        if (state.Status != EnrolmentStatus.Archived) return Decision.Nothing;
        var period = Math.Max(state.Period, state.Schedule.PeriodAt(now));
        return Decision.Of(new EnrolmentReinstated(state.Id, audienceId, period, state.Schedule.OpensAt(period), state.Schedule.DueAt(period), now));
    }

    /// <summary>any but archived → archived. Archiving an archived enrolment changes nothing.</summary>
    public static Decision Archive(EnrolmentState state, ArchiveReason reason, Instant now) =>
        state.Status == EnrolmentStatus.Archived
            ? Decision.Nothing
            : Decision.Of(new EnrolmentArchived(state.Id, reason, now));

    /// <summary>open → complete, overdue → complete (late). A repeated completionId changes nothing.</summary>
    public static Decision Complete(EnrolmentState state, Completion completion, Instant now)
    {
        if (state.CompletionIds.Contains(completion.CompletionId)) return Decision.Nothing;
        if (!string.Equals(completion.ContentId, state.PrimaryContentId, StringComparison.Ordinal))
            return Decision.Reject(RejectionKind.Invalid, "content-mismatch", $"Content '{completion.ContentId}' is not this enrolment's primary content.");
        // A waived period still takes the real completion: the record shows the training was done after all.
        if (state.Status is not (EnrolmentStatus.Open or EnrolmentStatus.Overdue) && !(state.Status == EnrolmentStatus.Complete && state.Waived))
            return Decision.Reject(RejectionKind.Conflict, "not-completable", $"An enrolment that is {Lower(state.Status)} cannot be completed; only open or overdue ones can.");
        if (state.Schedule.IsRecurring && completion.CompletedAt < state.AvailableDate)
            return Decision.Reject(RejectionKind.Conflict, "before-period", "The completion is older than the start of the current period, so it does not count for it.");
        var late = state.Status == EnrolmentStatus.Overdue || (state.DueDate is { } due && completion.CompletedAt > due);
        return Decision.Of(new EnrolmentCompleted(state.Id, completion.CompletionId, completion.ContentId, completion.CompletedAt, completion.Answer, late, now));
    }

    /// <summary>
    /// Completions recorded before this enrolment existed or was reinstated (an LMS posting while the fan-out still
    /// runs, or before the user joined), in the order they were recorded: each is decided as if it had arrived just
    /// now, so the first that counts completes the enrolment and the rest change nothing (a recurring assignment
    /// ignores those from before its current period).
    /// </summary>
    public static IReadOnlyList<IEnrolmentEvent> ApplyEarlierCompletions(EnrolmentState state, IEnumerable<Completion> recorded, Instant now)
    {
        var events = new List<IEnrolmentEvent>();
        foreach (var completion in recorded)
        foreach (var e in Complete(state, completion, now).Events)
        {
            events.Add(e);
            state = EnrolmentState.Fold(state, e);
        }
        return events;
    }

    /// <summary>The longest reason a waiver or an extension may carry.</summary>
    public const int MaxReasonLength = 500;

    /// <summary>open | overdue → complete: the current period is waived (an exemption), with its reason on record.</summary>
    public static Decision Waive(EnrolmentState state, string? reason, Instant now)
    {
        if (ReasonProblem(reason) is { } invalid) return invalid;
        if (state.Status is not (EnrolmentStatus.Open or EnrolmentStatus.Overdue))
            return Decision.Reject(RejectionKind.Conflict, "not-waivable", $"An enrolment that is {Lower(state.Status)} cannot be waived; only open or overdue ones can.");
        return Decision.Of(new EnrolmentWaived(state.Id, state.Period, reason!, now));
    }

    /// <summary>
    /// overdue → open (open stays open): the current period's due date moves later, to an instant still ahead and not
    /// after the next period's availableDate, so that periods never overlap.
    /// </summary>
    public static Decision Extend(EnrolmentState state, Instant dueDate, string? reason, Instant now)
    {
        if (ReasonProblem(reason) is { } invalid) return invalid;
        if (state.Status is not (EnrolmentStatus.Open or EnrolmentStatus.Overdue))
            return Decision.Reject(RejectionKind.Conflict, "not-extendable", $"An enrolment that is {Lower(state.Status)} cannot be extended; only open or overdue ones can.");
        if (state.DueDate is { } current && dueDate <= current)
            return Decision.Reject(RejectionKind.Invalid, "due-date-not-later", $"The new dueDate must be later than the current one ({current}).");
        if (dueDate <= now)
            return Decision.Reject(RejectionKind.Invalid, "due-date-past", $"The new dueDate must be in the future (now is {now}).");
        if (state.Schedule.IsRecurring && state.Schedule.OpensAt(state.Period + 1) is var nextOpens && dueDate > nextOpens)
            return Decision.Reject(RejectionKind.Invalid, "due-date-in-next-period", $"The new dueDate must not be after the next period's availableDate ({nextOpens}).");
        return Decision.Of(new EnrolmentExtended(state.Id, state.Period, state.DueDate, dueDate, reason!, now));
    }

    private static Decision? ReasonProblem(string? reason) =>
        string.IsNullOrWhiteSpace(reason) || reason.Length > MaxReasonLength
            ? Decision.Reject(RejectionKind.Invalid, "invalid-reason", $"reason is required: 1 to {MaxReasonLength} characters, not only spaces.")
            : null;

    /// <summary>A reminder was sent: an eventLog entry, no status change. Archived enrolments take no reminders.</summary>
    public static Decision Remind(EnrolmentState state, Instant now) =>
        state.Status == EnrolmentStatus.Archived
            ? Decision.Reject(RejectionKind.Conflict, "archived", "The enrolment is archived; reminders are recorded only for active enrolments.")
            : Decision.Of(new ReminderRecorded(state.Id, state.RemindersInPeriod + 1, now));

    /// <summary>
    /// The transitions time drives, applied as of <paramref name="now"/>. The state decides: a trigger that comes
    /// late, twice, or after a completion emits only what is still due, so ticks are idempotent.
    /// </summary>
    public static Decision Tick(EnrolmentState state, Instant now)
    {
        var events = new List<IEnrolmentEvent>();
        var current = state;
        while (events.Count < MaxTransitionsPerTick && NextTimeTransition(current, now) is { } e)
        {
            events.Add(e);
            current = EnrolmentState.Fold(current, e);
        }
        return new Decision(events);
    }

    /// <summary>The instant at which <see cref="Tick"/> would next do something, or null if time alone never changes it.</summary>
    public static Instant? NextDueAt(EnrolmentState state)
    {
        var schedule = state.Schedule;
        return state.Status switch
        {
            EnrolmentStatus.Scheduled => state.AvailableDate,
            EnrolmentStatus.Open => state.DueDate is { } due ? due + Duration.FromMilliseconds(1) : null,
            EnrolmentStatus.Complete when schedule.IsRecurring => state.DueDate,
            EnrolmentStatus.Overdue when schedule.IsRecurring => schedule.OpensAt(state.Period + 1),
            _ => null,
        };
    }

    private static IEnrolmentEvent? NextTimeTransition(EnrolmentState s, Instant now)
    {
        var schedule = s.Schedule;
        switch (s.Status)
        {
            case EnrolmentStatus.Scheduled when now >= s.AvailableDate:
                return new EnrolmentOpened(s.Id, s.Period, s.AvailableDate, s.DueDate, now);
            case EnrolmentStatus.Open when s.DueDate is { } due && now > due:
                return new EnrolmentBecameOverdue(s.Id, s.Period, due, now);
            case EnrolmentStatus.Complete when schedule.IsRecurring && s.DueDate is { } due && now >= due:
            {
                var next = s.Period + 1;
                var opens = schedule.OpensAt(next);
                return now >= opens
                    ? new EnrolmentOpened(s.Id, next, opens, schedule.DueAt(next), now)
                    : new EnrolmentRescheduled(s.Id, next, opens, schedule.DueAt(next), now);
            }
            case EnrolmentStatus.Overdue when schedule.IsRecurring && now >= schedule.OpensAt(s.Period + 1):
            {
                var next = s.Period + 1;
                return new EnrolmentOpened(s.Id, next, schedule.OpensAt(next), schedule.DueAt(next), now);
            }
            default:
                return null;
        }
    }

    public static string Lower(EnrolmentStatus status) => status.ToString().ToLowerInvariant();
}
