using System.Collections.Immutable;
using NodaTime;

namespace Enrolment.Domain;

/// <summary>
/// The write model of one enrolment: everything the rules need, rebuilt from its events by <see cref="Fold"/>.
/// Immutable: every event gives a new state.
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
    };

    /// <summary>Applies one event. A stream must start with <see cref="EnrolmentAssigned"/>.</summary>
    public static EnrolmentState Fold(EnrolmentState? state, IEnrolmentEvent e)
    {
        if (state is null)
            return e is EnrolmentAssigned assigned
                ? FromAssigned(assigned)
                : throw new InvalidOperationException($"An enrolment stream must start with {nameof(EnrolmentAssigned)}, not {e.GetType().Name}.");

        var next = state with { Status = EnrolmentEvents.StatusAfter(e, state.Status) };
        return e switch
        {
            EnrolmentOpened o => next with { Period = o.Period, AvailableDate = o.AvailableDate, DueDate = o.DueDate, RemindersInPeriod = o.Period == state.Period ? state.RemindersInPeriod : 0 },
            EnrolmentRescheduled r => next with { Period = r.Period, AvailableDate = r.AvailableDate, DueDate = r.DueDate, RemindersInPeriod = 0 },
            EnrolmentReinstated r => next with { AudienceId = r.AudienceId, Period = r.Period, AvailableDate = r.AvailableDate, DueDate = r.DueDate, RemindersInPeriod = r.Period == state.Period ? state.RemindersInPeriod : 0 },
            EnrolmentCompleted c => next with { LastCompletedAt = c.CompletedAt, LastAnswer = c.Answer, CompletionIds = state.CompletionIds.Add(c.CompletionId) },
            ReminderRecorded r => next with { RemindersInPeriod = r.Number },
            _ => next,
        };
    }

    public static EnrolmentState? Replay(IEnumerable<IEnrolmentEvent> events) =>
        events.Aggregate((EnrolmentState?)null, Fold);

    /// <summary>When time alone next changes this enrolment (see <see cref="EnrolmentRules.Tick"/>), or null if it never does.</summary>
    public Instant? NextTransitionAt => EnrolmentRules.NextDueAt(this);

    /// <summary>The same instant as a BCL type, for storage indexes that do not know NodaTime.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public DateTimeOffset? NextTransitionAtUtc => NextTransitionAt?.ToDateTimeOffset();

    /// <summary>Not complete and reminded 3 or more times in the current period (Mimecast's onWatchlist).</summary>
    public bool OnWatchlist => Status is not EnrolmentStatus.Complete and not EnrolmentStatus.Archived && RemindersInPeriod >= 3;
}
