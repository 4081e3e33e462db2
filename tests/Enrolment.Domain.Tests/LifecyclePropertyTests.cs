using Enrolment.Domain;
using NodaTime;
using static Enrolment.Domain.EnrolmentStatus;

namespace Enrolment.Domain.Tests;

/// <summary>
/// Random schedules and random command sequences (Tick, Complete, Remind, Archive, Reinstate at non-decreasing
/// instants) run through <see cref="EnrolmentRules"/> and <see cref="EnrolmentState.Fold"/>; each test checks one
/// rule of PRODUCT.md's "Enrolment lifecycle" on every run.
/// </summary>
public class LifecyclePropertyTests
{
    /// <summary>The lifecycle table of PRODUCT.md, row by row.</summary>
    private static readonly HashSet<(EnrolmentStatus From, EnrolmentStatus To)> TableRows =
    [
        (Unassigned, Scheduled), // enrolment created and availableDate is in the future
        (Unassigned, Open), // enrolment created and availableDate is now or past
        (Scheduled, Open), // the service clock reaches availableDate
        (Open, Overdue), // the clock passes dueDate with no completion in the period
        (Open, Complete), // a completion at or before dueDate
        (Overdue, Complete), // a late completion
        (Scheduled, Archived), (Open, Archived), (Overdue, Archived), (Complete, Archived), // any but archived → archived
        (Archived, Scheduled), (Archived, Open), // the user rejoins: reinstated
        (Overdue, Open), // the current period's due date is extended past now
        // open / overdue → complete by a waiver: the rows (Open, Complete) and (Overdue, Complete) above
    ];

    /// <summary>Rows of the table that are "recurring only".</summary>
    private static readonly HashSet<(EnrolmentStatus From, EnrolmentStatus To)> RecurringOnlyRows =
    [
        (Complete, Scheduled), // the period ends and the next period opens later
        (Complete, Open), (Overdue, Open), // the next period's availableDate is reached
    ];

    private static IEnumerable<(IEnrolmentEvent Event, EnrolmentStatus From, EnrolmentStatus To)> Transitions(Trace trace)
    {
        var status = Unassigned;
        foreach (var e in trace.Events)
        {
            var next = EnrolmentEvents.StatusAfter(e, status);
            yield return (e, status, next);
            status = next;
        }
    }

    /// <summary>Guards the generator: the properties below mean little unless random runs really take every row of the table.</summary>
    [Fact]
    public void Random_runs_take_every_row_of_the_lifecycle_table_and_hit_repeats_rejections_and_bounded_catch_up()
    {
        var rows = new HashSet<(EnrolmentStatus, EnrolmentStatus)>();
        int repeats = 0, rejections = 0, reminders = 0, bounded = 0, reopenedByExtension = 0, waivedThenCompleted = 0, waivedThenNextPeriod = 0;
        var gate = new object();
        Scenarios.Check(trace =>
        {
            var found = Transitions(trace).Where(t => t.From != t.To).Select(t => (t.From, t.To)).ToList();
            var seen = new HashSet<string>();
            var repeated = trace.Steps.Count(s => s.Command.Kind == CommandKind.Complete && !seen.Add($"c{s.Command.CompletionIndex}"));
            lock (gate)
            {
                rows.UnionWith(found);
                repeats += repeated;
                rejections += trace.Steps.Count(s => s.Decision.IsRejected);
                reminders += trace.Events.Count(e => e is ReminderRecorded);
                bounded += trace.Steps.Count(s => s.Decision.Events.Count == EnrolmentRules.MaxTransitionsPerTick);
                reopenedByExtension += trace.Steps.Count(s => s.Before.Status == Overdue && s.Decision.Events.Any(e => e is EnrolmentExtended));
                waivedThenCompleted += trace.Steps.Count(s => s.Before.Waived && s.Decision.Events.Any(e => e is EnrolmentCompleted));
                waivedThenNextPeriod += trace.Steps.Count(s => s.Before.Waived && s.Decision.Events.Any(e => e is EnrolmentOpened or EnrolmentRescheduled));
            }
        });

        Assert.Empty(TableRows.Union(RecurringOnlyRows).Except(rows));
        Assert.True(repeats > 100 && rejections > 100 && reminders > 100 && bounded > 0, $"repeats {repeats}, rejections {rejections}, reminders {reminders}, bounded ticks {bounded}");
        Assert.True(reopenedByExtension > 20 && waivedThenCompleted > 20 && waivedThenNextPeriod > 20,
            $"overdue → open by extension {reopenedByExtension}, completion after a waiver {waivedThenCompleted}, waiver then the next period {waivedThenNextPeriod}");
    }

    [Fact]
    public void Every_status_change_is_a_row_of_the_lifecycle_table_and_recurring_rows_need_a_recurring_schedule() =>
        Scenarios.Check(trace =>
        {
            var recurring = trace.Scenario.Schedule.IsRecurring;
            foreach (var (e, from, to) in Transitions(trace))
            {
                if (from == to) continue; // no status change: see the reminder rule
                var allowed = TableRows.Contains((from, to)) || (recurring && RecurringOnlyRows.Contains((from, to)));
                Assert.True(allowed, $"{EnrolmentEvents.EventType(e)} moved {from} → {to}, which is not a row of the lifecycle table (recurring: {recurring}); event {e}");
            }
        });

    [Fact]
    public void Only_a_reminder_an_extension_of_an_open_enrolment_or_a_completion_after_a_waiver_leaves_the_status_unchanged() =>
        Scenarios.Check(trace =>
        {
            var state = trace.Initial;
            foreach (var (e, from, to) in Transitions(trace).Skip(1))
            {
                if (e is ReminderRecorded)
                {
                    Assert.Equal(from, to);
                    Assert.NotEqual(Archived, from);
                }
                else if (e is EnrolmentExtended)
                {
                    Assert.True(from is Open or Overdue, $"extended a {from} enrolment");
                    Assert.Equal(Open, to);
                }
                else if (e is EnrolmentCompleted && state.Waived)
                {
                    Assert.Equal((Complete, Complete), (from, to));
                }
                else
                {
                    Assert.True(from != to, $"{EnrolmentEvents.EventType(e)} left the status at {from}: only a reminder, an open enrolment's extension or a completion after a waiver may do that; event {e}");
                }
                state = EnrolmentState.Fold(state, e);
            }
        });

    [Fact]
    public void A_waiver_completes_only_an_open_or_overdue_enrolment_sets_no_completion_and_still_takes_a_real_completion() =>
        Scenarios.Check(trace =>
        {
            foreach (var step in trace.Steps)
            {
                if (step.Command.Kind == CommandKind.Waive)
                {
                    if (!step.Command.ReasonValid) { Assert.Equal(RejectionKind.Invalid, step.Decision.Rejection?.Kind); continue; }
                    if (step.Before.Status is Open or Overdue)
                    {
                        var waived = Assert.IsType<EnrolmentWaived>(Assert.Single(step.Decision.Events));
                        Assert.Equal(step.Before.Period, waived.Period);
                        Assert.Equal(Complete, step.After.Status);
                        Assert.True(step.After.Waived);
                        Assert.False(step.After.Watched, "a waiver is not watching the training (Mimecast watched:false)");
                        Assert.False(step.After.NeedsEngagement);
                        Assert.Equal(step.Before.LastCompletedAt, step.After.LastCompletedAt);
                        Assert.Equal("enrolment.waived", step.After.EventLog[^1].Type);
                        Assert.Equal("holds the certificate", step.After.EventLog[^1].Reason);
                    }
                    else
                    {
                        Assert.Equal(RejectionKind.Conflict, step.Decision.Rejection?.Kind);
                    }
                }
                if (step.Command.Kind == CommandKind.Complete && step.Before.Waived && step.Command.ContentMatches
                    && !step.Before.CompletionIds.Contains($"c{step.Command.CompletionIndex}"))
                {
                    var completion = Scenarios.CompletionOf(step.Command, step.Now, Scenarios.Scale(trace.Scenario.Schedule));
                    if (trace.Scenario.Schedule.IsRecurring && completion.CompletedAt < step.Before.AvailableDate) continue;
                    var completed = Assert.IsType<EnrolmentCompleted>(Assert.Single(step.Decision.Events));
                    Assert.Equal(completion.CompletedAt, step.After.LastCompletedAt);
                    Assert.Equal(Complete, step.After.Status);
                    Assert.False(step.After.Waived);
                    Assert.True(step.After.Watched);
                    Assert.Equal(step.Before.DueDate is { } due && completed.CompletedAt > due, completed.Late);
                }
            }
        });

    [Fact]
    public void An_extension_moves_the_due_date_later_reopens_an_overdue_enrolment_and_leaves_the_next_period_alone() =>
        Scenarios.Check(trace =>
        {
            var schedule = trace.Scenario.Schedule;
            foreach (var step in trace.Steps)
            {
                if (step.Command.Kind == CommandKind.Extend)
                {
                    var wanted = Scenarios.ExtendedDueOf(step.Before, step.Command, step.Now, Scenarios.Scale(schedule));
                    var allowed = step.Command.ReasonValid && step.Before.Status is Open or Overdue
                        && (step.Before.DueDate is not { } current || wanted > current) && wanted > step.Now
                        && (!schedule.IsRecurring || wanted <= schedule.OpensAt(step.Before.Period + 1));
                    if (allowed)
                    {
                        var extended = Assert.IsType<EnrolmentExtended>(Assert.Single(step.Decision.Events));
                        Assert.Equal((step.Before.DueDate, wanted), (extended.PreviousDueDate, extended.DueDate));
                        Assert.Equal((Open, wanted, step.Before.Period), (step.After.Status, step.After.DueDate, step.After.Period));
                        Assert.Equal(wanted + Duration.FromMilliseconds(1), EnrolmentRules.NextDueAt(step.After));
                    }
                    else
                    {
                        Assert.True(step.Decision.IsRejected, $"extension to {wanted} of a {step.Before.Status} enrolment due {step.Before.DueDate} at {step.Now} was not refused");
                        Assert.Equal(step.Command.ReasonValid && step.Before.Status is not (Open or Overdue) ? RejectionKind.Conflict : RejectionKind.Invalid, step.Decision.Rejection!.Kind);
                    }
                }
                // Every new period keeps its own schedule, whatever extensions its predecessors had.
                foreach (var e in step.Decision.Events)
                {
                    if (e is EnrolmentOpened o) Assert.Equal((schedule.OpensAt(o.Period), schedule.DueAt(o.Period)), (o.AvailableDate, o.DueDate));
                    if (e is EnrolmentRescheduled r) Assert.Equal((schedule.OpensAt(r.Period), schedule.DueAt(r.Period)), (r.AvailableDate, r.DueDate));
                }
            }
        });

    [Fact]
    public void Unassigned_is_only_the_previous_status_of_the_first_event_and_never_a_current_status() =>
        Scenarios.Check(trace =>
        {
            var transitions = Transitions(trace).ToList();
            Assert.IsType<EnrolmentAssigned>(transitions[0].Event);
            Assert.Equal(Unassigned, transitions[0].From);
            foreach (var (e, from, to) in transitions.Skip(1))
            {
                Assert.False(e is EnrolmentAssigned, "only the first event of a stream is an assignment");
                Assert.NotEqual(Unassigned, from);
                Assert.NotEqual(Unassigned, to);
            }
            Assert.NotEqual(Unassigned, trace.Initial.Status);
            foreach (var step in trace.Steps) Assert.NotEqual(Unassigned, step.After.Status);
        });

    [Fact]
    public void A_completion_whose_completionId_was_already_applied_yields_no_events_and_is_not_refused() =>
        Scenarios.Check(trace =>
        {
            var applied = new HashSet<string>();
            foreach (var step in trace.Steps)
            {
                if (step.Command.Kind == CommandKind.Complete)
                {
                    var completionId = $"c{step.Command.CompletionIndex}";
                    if (applied.Contains(completionId))
                    {
                        Assert.Empty(step.Decision.Events);
                        Assert.False(step.Decision.IsRejected, $"a repeated completionId is idempotent, not an error: {step.Decision.Rejection}");
                    }
                }
                foreach (var completed in step.Decision.Events.OfType<EnrolmentCompleted>()) applied.Add(completed.CompletionId);
            }
            Assert.True(applied.SetEquals(trace.Final.CompletionIds));
        });

    [Fact]
    public void Replaying_the_stream_from_scratch_rebuilds_the_incrementally_built_state() =>
        Scenarios.Check(trace =>
        {
            var replayed = EnrolmentState.Replay(trace.Events);
            Assert.NotNull(replayed);
            var incremental = trace.Final;
            Assert.True(replayed.CompletionIds.SetEquals(incremental.CompletionIds));
            Assert.Equal(incremental.EventLog, replayed.EventLog);
            Assert.Equal(incremental.OnTimeSinceLastMiss, replayed.OnTimeSinceLastMiss);
            // Record equality compares every other field; collections are compared by reference, hence the checks above.
            Assert.Equal(incremental, replayed with
            {
                CompletionIds = incremental.CompletionIds, EventLog = incremental.EventLog, OnTimeSinceLastMiss = incremental.OnTimeSinceLastMiss,
            });
            Assert.Equal(incremental.OnWatchlist, replayed.OnWatchlist);
            Assert.All(trace.Events, e => Assert.Equal(Scenarios.EnrolmentId, e.EnrolmentId));
        });

    /// <summary>
    /// Tick(state, now) applied, then Tick again at the same now, yields no events. One tick emits at most
    /// <see cref="EnrolmentRules.MaxTransitionsPerTick"/> events; when it hits that bound the second tick carries on
    /// (see the next test and the catch-up example in EnrolmentRulesTests), so such runs are excluded here.
    /// </summary>
    [Fact]
    public void Tick_is_idempotent_a_second_tick_at_the_same_instant_yields_no_events() =>
        Scenarios.Check(trace =>
        {
            foreach (var step in trace.Steps)
            {
                // After whatever the command did, tick once, then again at the same instant.
                var first = EnrolmentRules.Tick(step.After, step.Now);
                Assert.True(first.Events.Count <= EnrolmentRules.MaxTransitionsPerTick);
                if (first.Events.Count == EnrolmentRules.MaxTransitionsPerTick) continue;
                var ticked = first.Events.Aggregate(step.After, EnrolmentState.Fold);
                var second = EnrolmentRules.Tick(ticked, step.Now);
                Assert.True(second.Events.Count == 0,
                    $"second Tick at {step.Now} emitted {second.Events.Count} events after the first emitted {first.Events.Count} (status {ticked.Status}, period {ticked.Period}, due {ticked.DueDate})");
                Assert.True(EnrolmentRules.NextDueAt(ticked) is not { } next || next > step.Now, "after a complete tick the enrolment is not due any more");
            }
        });

    [Fact]
    public void Repeated_ticks_at_the_same_instant_reach_a_fixed_point_without_repeating_a_transition() =>
        Scenarios.Check(trace =>
        {
            foreach (var step in trace.Steps)
            {
                var state = step.After;
                var seen = new HashSet<(string Type, int Period)>();
                for (var ticks = 0; ; ticks++)
                {
                    Assert.True(ticks < 1000, "ticking at one instant did not converge");
                    var decision = EnrolmentRules.Tick(state, step.Now);
                    if (decision.Events.Count == 0) break;
                    foreach (var e in decision.Events)
                    {
                        var period = e switch { EnrolmentOpened o => o.Period, EnrolmentBecameOverdue o => o.Period, EnrolmentRescheduled r => r.Period, _ => -1 };
                        Assert.True(seen.Add((EnrolmentEvents.EventType(e), period)), $"{EnrolmentEvents.EventType(e)} for period {period} was emitted twice at {step.Now}");
                        state = EnrolmentState.Fold(state, e);
                    }
                }
                Assert.True(EnrolmentRules.NextDueAt(state) is not { } next || next > step.Now);
            }
        }, iter: 600);

    [Fact]
    public void Rejected_decisions_carry_no_events() =>
        Scenarios.Check(trace =>
        {
            foreach (var step in trace.Steps.Where(s => s.Decision.IsRejected))
            {
                Assert.Empty(step.Decision.Events);
                Assert.Same(step.Before, step.After);
            }
        });

    [Fact]
    public void Completions_are_refused_for_other_content_and_for_scheduled_or_archived_enrolments() =>
        Scenarios.Check(trace =>
        {
            foreach (var step in trace.Steps.Where(s => s.Command.Kind == CommandKind.Complete))
            {
                var repeated = step.Before.CompletionIds.Contains($"c{step.Command.CompletionIndex}");
                if (repeated) continue;
                if (!step.Command.ContentMatches || step.Before.Status is Scheduled or Archived)
                {
                    Assert.True(step.Decision.IsRejected, $"completion of {step.Before.Status} enrolment (content matches: {step.Command.ContentMatches}) was not refused");
                    Assert.Equal(step.Before.Status, step.After.Status);
                }
            }
        });

    [Fact]
    public void Time_driven_events_happen_at_the_tick_instant_and_never_before_their_trigger() =>
        Scenarios.Check(trace =>
        {
            foreach (var step in trace.Steps)
            {
                Assert.All(step.Decision.Events, e => Assert.Equal(step.Now, e.At));
                var state = step.Before;
                foreach (var e in step.Decision.Events)
                {
                    switch (e)
                    {
                        case EnrolmentOpened o:
                            Assert.True(o.AvailableDate <= o.At, $"opened before its availableDate: {o}");
                            break;
                        case EnrolmentBecameOverdue o:
                            Assert.Equal(state.DueDate, o.DueDate);
                            Assert.True(o.DueDate < o.At, $"overdue before the clock passed the due date: {o}");
                            break;
                        case EnrolmentRescheduled r:
                            Assert.True(state.DueDate <= r.At, $"rescheduled before the period's due date {state.DueDate}: {r}");
                            Assert.True(r.AvailableDate > r.At, $"rescheduled into a period that is already open: {r}");
                            break;
                        case EnrolmentCompleted c:
                            Assert.Equal(state.Status == Overdue || (state.DueDate is { } due && c.CompletedAt > due), c.Late);
                            break;
                    }
                    state = EnrolmentState.Fold(state, e);
                }
            }
        });

    [Fact]
    public void NextDueAt_is_the_first_instant_at_which_a_tick_does_anything() =>
        Scenarios.Check(trace =>
        {
            foreach (var state in trace.Steps.Select(s => s.After).Prepend(trace.Initial))
            {
                var next = EnrolmentRules.NextDueAt(state);
                if (next is { } at)
                {
                    Assert.Empty(EnrolmentRules.Tick(state, at - Duration.FromMilliseconds(1)).Events);
                    Assert.NotEmpty(EnrolmentRules.Tick(state, at).Events);
                }
                else
                {
                    Assert.Empty(EnrolmentRules.Tick(state, Instant.FromUtc(9000, 1, 1, 0, 0)).Events);
                }
            }
        }, iter: 600);

    [Fact]
    public void Reminders_count_within_the_current_period_and_three_put_an_incomplete_enrolment_on_the_watchlist() =>
        Scenarios.Check(trace =>
        {
            foreach (var step in trace.Steps)
            {
                var state = step.Before;
                foreach (var e in step.Decision.Events)
                {
                    var next = EnrolmentState.Fold(state, e);
                    if (e is ReminderRecorded r) Assert.Equal(state.RemindersInPeriod + 1, r.NumberInPeriod);
                    if (next.Period != state.Period) Assert.Equal(0, next.RemindersInPeriod);
                    if (e is not ReminderRecorded && next.Period == state.Period) Assert.Equal(state.RemindersInPeriod, next.RemindersInPeriod);
                    Assert.Equal(next.RemindersInPeriod >= 3 && next.Status is not (Complete or Archived), next.OnWatchlist);
                    state = next;
                }
            }
        });
}
