using Enrolment.Domain;
using NodaTime;
using static Enrolment.Domain.EnrolmentStatus;

namespace Enrolment.Domain.Tests;

/// <summary>
/// PRODUCT.md: "A completion recorded before its enrolment exists is applied when the enrolment is created, by the
/// same rules as if it had arrived just after"; "for a recurring assignment only when its completedAt is at or after
/// the current period's availableDate". And the eventLog the fold keeps, one entry per event.
/// </summary>
public class EarlierCompletionsTests
{
    private static readonly Instant Available = Instant.FromUtc(2025, 3, 3, 9, 0);
    private static readonly Guid Id = Scenarios.EnrolmentId;
    private static Schedule OneOff() => new(Available, Period.FromDays(30), null, null, Schedule.DefaultTimeZone);
    private static Schedule Monthly() => new(Available, Period.FromDays(7), null, Period.FromMonths(1), Schedule.DefaultTimeZone);
    private static Completion At(string id, Instant at) => new(id, "c1", at, 50);

    [Fact]
    public void An_open_enrolment_is_completed_by_the_first_earlier_completion_and_the_rest_change_nothing()
    {
        var now = Available + Duration.FromDays(1);
        var events = EnrolmentRules.Enrol(Id, Scenarios.AssignmentId, "u1", "a1", "c1", OneOff(), [At("x1", now - Duration.FromHours(2)), At("x2", now - Duration.FromHours(1))], now);
        var state = EnrolmentState.Replay(events)!;
        Assert.Equal(Complete, state.Status);
        Assert.Equal(["x1"], state.CompletionIds);
        Assert.Equal(["enrolment.assigned", "enrolment.completed"], state.EventLog.Select(e => e.Type));
        Assert.Equal((Unassigned, Open), (state.EventLog[0].PreviousStatus, state.EventLog[0].NextStatus));
        Assert.Equal((Open, Complete), (state.EventLog[1].PreviousStatus, state.EventLog[1].NextStatus));
        Assert.Equal("x1", state.EventLog[1].CompletionId);
    }

    [Fact]
    public void A_scheduled_enrolment_is_not_completed_by_an_earlier_completion()
    {
        var now = Available - Duration.FromDays(1);
        var events = EnrolmentRules.Enrol(Id, Scenarios.AssignmentId, "u1", "a1", "c1", OneOff(), [At("x1", now - Duration.FromHours(1))], now);
        Assert.IsType<EnrolmentAssigned>(Assert.Single(events));
    }

    [Fact]
    public void A_recurring_enrolment_ignores_completions_before_its_current_period_and_takes_one_within_it()
    {
        var now = Available + Duration.FromDays(32); // period 1 opened on 3 April
        var before = At("old", Available + Duration.FromDays(1));
        var within = At("new", Available + Duration.FromDays(31) + Duration.FromHours(1));
        Assert.Single(EnrolmentRules.Enrol(Id, Scenarios.AssignmentId, "u1", "a1", "c1", Monthly(), [before], now));
        var state = EnrolmentState.Replay(EnrolmentRules.Enrol(Id, Scenarios.AssignmentId, "u1", "a1", "c1", Monthly(), [before, within], now))!;
        Assert.Equal(Complete, state.Status);
        Assert.Equal(["new"], state.CompletionIds);
    }

    [Fact]
    public void A_rejoin_reinstates_then_applies_the_completion_recorded_while_archived()
    {
        var start = Available + Duration.FromDays(1);
        var state = EnrolmentState.Replay(EnrolmentRules.Enrol(Id, Scenarios.AssignmentId, "u1", "a1", "c1", OneOff(), [], start))!;
        state = EnrolmentRules.Archive(state, ArchiveReason.LeftAudience, start + Duration.FromHours(1)).Events.Aggregate(state, EnrolmentState.Fold);
        var decision = EnrolmentRules.Rejoin(state, "a1", [At("away", start + Duration.FromHours(2))], start + Duration.FromHours(3));
        Assert.Equal([typeof(EnrolmentReinstated), typeof(EnrolmentCompleted)], decision.Events.Select(e => e.GetType()));
        // Not archived: a rejoin does nothing, stored completions included.
        Assert.Empty(EnrolmentRules.Rejoin(decision.Events.Aggregate(state, EnrolmentState.Fold), "a1", [At("again", start)], start + Duration.FromHours(4)).Events);
    }
}
