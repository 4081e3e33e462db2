using System.Collections.Immutable;
using NodaTime;

namespace Enrolment.Domain;

/// <summary>
/// One enrolment, folded from its events by <see cref="Fold"/>: the only code that knows how an event changes an
/// enrolment. The rules decide from it; the API's enrolment (with its eventLog) and the Mimecast training item are
/// functions of it; it is the one document stored per enrolment. Immutable: every event gives a new state.
/// </summary>
public sealed record EnrolmentState
{
    public required Guid Id { get; init; }
    public required Guid AssignmentId { get; init; }
    public required string UserId { get; init; }
    public required string AudienceId { get; init; }
    public required string PrimaryContentId { get; init; }
    public required Schedule Schedule { get; init; }
    public required EnrolmentStatus Status { get; init; }
    public required int Period { get; init; }
    public required Instant AvailableDate { get; init; }
    public Instant? DueDate { get; init; }
    public Instant? LastCompletedAt { get; init; }
    public double? LastAnswer { get; init; }
    public int RemindersInPeriod { get; init; }
    public ImmutableHashSet<string> CompletionIds { get; init; } = ImmutableHashSet<string>.Empty;

    /// <summary>One entry per event, in stream order: the API's eventLog.</summary>
    public ImmutableList<EventLogEntry> EventLog { get; init; } = ImmutableList<EventLogEntry>.Empty;

    /// <summary>The instant of the latest event.</summary>
    public required Instant UpdatedAt { get; init; }

    /// <summary>When the training was (last) assigned to the user: enrolled, or reinstated after an archive.</summary>
    public required Instant AssignedAt { get; init; }

    /// <summary>Complete by a waiver, with no completion recorded since: a completion of this period is still taken.</summary>
    public bool Waived { get; init; }

    public int OnTimeCompletions { get; init; }
    public int LateCompletions { get; init; }

    /// <summary>The due date of the latest period this enrolment missed (went overdue, or was completed late).</summary>
    public Instant? LastMissAt { get; init; }

    /// <summary>When each on-time completion since <see cref="LastMissAt"/> happened (the latest <see cref="MaxRun"/>).</summary>
    public ImmutableList<Instant> OnTimeSinceLastMiss { get; init; } = ImmutableList<Instant>.Empty;

    /// <summary>How many on-time completions <see cref="OnTimeSinceLastMiss"/> keeps: enough for any merit streak.</summary>
    public const int MaxRun = 100;

    private static EnrolmentState FromAssigned(EnrolmentAssigned e) => new()
    {
        Id = e.EnrolmentId,
        AssignmentId = e.AssignmentId,
        UserId = e.UserId,
        AudienceId = e.AudienceId,
        PrimaryContentId = e.PrimaryContentId,
        Schedule = e.Schedule,
        Status = EnrolmentEvents.StatusAfter(e, EnrolmentStatus.Unassigned),
        Period = e.Period,
        AvailableDate = e.AvailableDate,
        DueDate = e.DueDate,
        UpdatedAt = e.At,
        AssignedAt = e.At,
    };

    /// <summary>Applies one event. A stream must start with <see cref="EnrolmentAssigned"/>.</summary>
    public static EnrolmentState Fold(EnrolmentState? state, IEnrolmentEvent e)
    {
        if (state is null)
            return e is EnrolmentAssigned assigned
                ? FromAssigned(assigned).Logged(EnrolmentStatus.Unassigned, e)
                : throw new InvalidOperationException($"An enrolment stream must start with {nameof(EnrolmentAssigned)}, not {e.GetType().Name}.");

        var status = EnrolmentEvents.StatusAfter(e, state.Status);
        // A waiver holds while the enrolment stays complete without a completion of its own.
        var next = state with { Status = status, UpdatedAt = e.At, Waived = e is EnrolmentWaived || (state.Waived && status == EnrolmentStatus.Complete && e is not EnrolmentCompleted) };
        next = e switch
        {
            EnrolmentOpened o => next with { Period = o.Period, AvailableDate = o.AvailableDate, DueDate = o.DueDate, RemindersInPeriod = o.Period == state.Period ? state.RemindersInPeriod : 0 },
            EnrolmentRescheduled r => next with { Period = r.Period, AvailableDate = r.AvailableDate, DueDate = r.DueDate, RemindersInPeriod = 0 },
            EnrolmentReinstated r => next with { AudienceId = r.AudienceId, Period = r.Period, AvailableDate = r.AvailableDate, DueDate = r.DueDate, AssignedAt = r.At, RemindersInPeriod = r.Period == state.Period ? state.RemindersInPeriod : 0 },
            EnrolmentBecameOverdue o => next.Missed(o.DueDate),
            EnrolmentCompleted { Late: true } c => (next with { LastCompletedAt = c.CompletedAt, LastAnswer = c.Answer, CompletionIds = state.CompletionIds.Add(c.CompletionId), LateCompletions = state.LateCompletions + 1 })
                .Missed(state.DueDate ?? c.CompletedAt),
            EnrolmentCompleted c => next with
            {
                LastCompletedAt = c.CompletedAt, LastAnswer = c.Answer, CompletionIds = state.CompletionIds.Add(c.CompletionId), OnTimeCompletions = state.OnTimeCompletions + 1,
                OnTimeSinceLastMiss = (state.OnTimeSinceLastMiss.Count >= MaxRun ? state.OnTimeSinceLastMiss.RemoveAt(0) : state.OnTimeSinceLastMiss).Add(c.CompletedAt),
            },
            ReminderRecorded r => next with { RemindersInPeriod = r.NumberInPeriod },
            EnrolmentExtended x => next with { DueDate = x.DueDate },
            _ => next,
        };
        return next.Logged(state.Status, e);
    }

    private EnrolmentState Logged(EnrolmentStatus before, IEnrolmentEvent e) => this with
    {
        EventLog = EventLog.Add(new EventLogEntry(EnrolmentEvents.EventType(e), EnrolmentEvents.CompletionId(e), before, Status, e.At, e.At, EnrolmentEvents.Reason(e))),
    };

    private EnrolmentState Missed(Instant dueDate) => this with
    {
        LastMissAt = LastMissAt is null || dueDate > LastMissAt ? dueDate : LastMissAt,
        OnTimeSinceLastMiss = ImmutableList<Instant>.Empty,
    };

    public static EnrolmentState? Replay(IEnumerable<IEnrolmentEvent> events) =>
        events.Aggregate((EnrolmentState?)null, Fold);

    /// <summary>When time alone next changes this enrolment (see <see cref="EnrolmentRules.Tick"/>), or null if it never does.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public Instant? NextTransitionAt => EnrolmentRules.NextDueAt(this);

    /// <summary>The same instant as a BCL type, for storage indexes that do not know NodaTime.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public DateTimeOffset? NextTransitionAtUtc => NextTransitionAt?.ToDateTimeOffset();

    /// <summary>Mimecast's watched: completed in the current period (a waiver alone is not watching the training).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool Watched => Status == EnrolmentStatus.Complete && !Waived;

    /// <summary>Not complete and reminded 3 or more times in the current period (Mimecast's onWatchlist).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool OnWatchlist => Status is not EnrolmentStatus.Complete and not EnrolmentStatus.Archived && RemindersInPeriod >= 3;

    /// <summary>Mimecast's needEngagement for this enrolment: overdue, or on the watchlist.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool NeedsEngagement => Status == EnrolmentStatus.Overdue || OnWatchlist;
}
