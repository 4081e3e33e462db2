using System.Text;
using CsCheck;
using Enrolment.Domain;
using NodaTime;

namespace Enrolment.Domain.Tests;

public enum CommandKind
{
    Tick,
    Complete,
    Remind,
    Archive,
    Reinstate,
    Waive,
    Extend,
}

/// <summary>
/// One generated command. Times are in units of the schedule's scale (its recurrence, else its due span, else a
/// day), so that the same command shape makes sense for a PT30S and a P1Y schedule.
/// </summary>
public sealed record Command(
    CommandKind Kind,
    double Gap,
    int CompletionIndex,
    bool ContentMatches,
    double CompletedAtOffset,
    ArchiveReason Reason,
    int AudienceIndex,
    double DueOffset = 0.5,
    bool ReasonValid = true)
{
    public override string ToString() => Kind switch
    {
        CommandKind.Complete => $"+{Gap:0.###} Complete(c{CompletionIndex}, {(ContentMatches ? "content" : "other-content")}, completedAt {CompletedAtOffset:+0.###;-0.###})",
        CommandKind.Archive => $"+{Gap:0.###} Archive({Reason})",
        CommandKind.Reinstate => $"+{Gap:0.###} Reinstate(aud-{AudienceIndex})",
        CommandKind.Waive => $"+{Gap:0.###} Waive({(ReasonValid ? "reason" : "no reason")})",
        CommandKind.Extend => $"+{Gap:0.###} Extend(due {DueOffset:+0.###;-0.###}, {(ReasonValid ? "reason" : "no reason")})",
        _ => $"+{Gap:0.###} {Kind}",
    };
}

/// <summary>A random schedule, the instant of enrolment (in scale units from availableDate) and the commands after it.</summary>
public sealed record Scenario(Schedule Schedule, double AssignAt, Command[] Commands)
{
    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append(Schedule).Append(", scale ").Append(Scenarios.Scale(Schedule)).Append(", assign at ").Append(AssignAt.ToString("0.###"));
        foreach (var command in Commands) text.Append("\n  ").Append(command);
        return text.ToString();
    }
}

/// <summary>What one command did: the state before, the decision, the state after.</summary>
public sealed record Step(Command Command, Instant Now, EnrolmentState Before, Decision Decision, EnrolmentState After);

public sealed record Trace(Scenario Scenario, EnrolmentAssigned Assigned, EnrolmentState Initial, IReadOnlyList<Step> Steps)
{
    /// <summary>Every event of the stream, in order, starting with the assignment.</summary>
    public IEnumerable<IEnrolmentEvent> Events => Steps.SelectMany(s => s.Decision.Events).Prepend(Assigned);

    public EnrolmentState Final => Steps.Count == 0 ? Initial : Steps[^1].After;
}

public static class Scenarios
{
    public const string ContentId = "content-1";
    public const string UserId = "user-1";
    public static readonly Guid AssignmentId = Guid.Parse("0b8f5d0e-8a59-4c52-9a52-4d4a3b1f9c01");
    public static readonly Guid EnrolmentId = Ids.EnrolmentId("eu-west-2_AbcdEfghI", AssignmentId, UserId);

    public static readonly string[] Zones = ["Etc/UTC", "Europe/London", "America/New_York", "Australia/Sydney", "Asia/Kolkata"];

    public static readonly Period[] Periods =
    [
        Period.FromSeconds(30), Period.FromMinutes(5), Period.FromHours(1), Period.FromHours(12),
        Period.FromDays(1), Period.FromWeeks(1), Period.FromDays(30), Period.FromMonths(1), Period.FromMonths(3), Period.FromYears(1),
    ];

    private static readonly Duration[] DueSpans =
    [
        Duration.FromSeconds(30), Duration.FromMinutes(5), Duration.FromHours(1), Duration.FromDays(1),
        Duration.FromDays(7), Duration.FromDays(30), Duration.FromDays(90), Duration.FromDays(365),
    ];

    /// <summary>Instants where calendars are interesting: DST changes in the zones above, month ends, a leap day.</summary>
    private static readonly Instant[] Anchors =
    [
        Instant.FromUtc(2024, 3, 31, 1, 0), Instant.FromUtc(2024, 10, 27, 1, 0), // Europe/London
        Instant.FromUtc(2025, 3, 30, 1, 0), Instant.FromUtc(2025, 10, 26, 1, 0),
        Instant.FromUtc(2024, 3, 10, 7, 0), Instant.FromUtc(2024, 11, 3, 6, 0), // America/New_York
        Instant.FromUtc(2024, 4, 6, 16, 0), Instant.FromUtc(2024, 10, 5, 16, 0), // Australia/Sydney
        Instant.FromUtc(2024, 1, 31, 12, 0), Instant.FromUtc(2025, 1, 31, 12, 0), Instant.FromUtc(2024, 2, 29, 12, 0),
    ];

    private static readonly Instant RangeStart = Instant.FromUtc(2023, 1, 1, 0, 0);
    private static readonly Instant RangeEnd = Instant.FromUtc(2027, 1, 1, 0, 0);

    public static readonly Gen<Instant> AvailableDate = Gen.Frequency(
        (1, Gen.Long[RangeStart.ToUnixTimeMilliseconds(), RangeEnd.ToUnixTimeMilliseconds()].Select(Instant.FromUnixTimeMilliseconds)),
        (1, Gen.Select(Gen.Int[0, Anchors.Length - 1], Gen.Long[-3 * 3_600_000L, 3 * 3_600_000L],
            (i, offset) => Anchors[i] + Duration.FromMilliseconds(offset))));

    public static readonly Gen<Period> AnyPeriod = Gen.Int[0, Periods.Length - 1].Select(i => Periods[i]);

    private static readonly Gen<Period?> Recurrence = Gen.Frequency(
        (2, Gen.Const((Period?)null)),
        (3, AnyPeriod.Select(p => (Period?)p)));

    /// <summary>
    /// Valid schedules: recurring or not; a completion period, an explicit due date or neither (recurring ones need
    /// one of the two); periods from seconds to a year; a few zones with and without DST.
    /// </summary>
    public static readonly Gen<Schedule> GenSchedule =
        Gen.Select(AvailableDate, Gen.Int[0, 2], AnyPeriod, Gen.Int[0, DueSpans.Length - 1], Gen.Double[0.25, 2.0], Recurrence, Gen.Int[0, Zones.Length - 1])
            .Select(t =>
            {
                var (available, dueKind, completionPeriod, spanIndex, spanFactor, recurrence, zoneIndex) = t;
                if (recurrence is not null && dueKind == 0) dueKind = 1;
                var dueDate = available + Duration.FromMilliseconds(Math.Max(1L, (long)(DueSpans[spanIndex].TotalMilliseconds * spanFactor)));
                var zone = Zones[zoneIndex];
                var schedule = new Schedule(available, dueKind == 1 ? completionPeriod : null, dueKind == 2 ? dueDate : null, recurrence, zone);
                // A recurrence shorter than the completion period is invalid: swap them so that more samples are valid.
                if (dueKind == 1 && recurrence is not null && Validate(schedule) is not null)
                    schedule = schedule with { CompletionPeriod = recurrence, Recurrence = completionPeriod };
                return schedule;
            })
            .Where(s => Validate(s) is null);

    public static string? Validate(Schedule s) =>
        Schedule.Validate(s.AvailableDate, s.CompletionPeriod, s.DueDate, s.Recurrence, s.TimeZone);

    /// <summary>The schedule's natural unit of time: its recurrence, else its due span, else a day.</summary>
    public static Duration Scale(Schedule s)
    {
        if (s.IsRecurring) return s.OpensAt(1) - s.AvailableDate;
        if (s.DueAt(0) is { } due) return due - s.AvailableDate;
        return Duration.FromDays(1);
    }

    private static readonly Gen<double> Gap = Gen.Frequency(
        (3, Gen.Const(0.0)),
        (10, Gen.Double[0.0, 0.6]),
        (3, Gen.Double[0.6, 3.0]),
        (1, Gen.Double[3.0, 150.0])); // downtime: many periods pass between two commands

    private static readonly Gen<CommandKind> Kind = Gen.Frequency(
        (8, Gen.Const(CommandKind.Tick)),
        (5, Gen.Const(CommandKind.Complete)),
        (3, Gen.Const(CommandKind.Remind)),
        (2, Gen.Const(CommandKind.Archive)),
        (2, Gen.Const(CommandKind.Reinstate)),
        (2, Gen.Const(CommandKind.Waive)),
        (3, Gen.Const(CommandKind.Extend)));

    public static readonly Gen<Command> GenCommand =
        Gen.Select(Kind, Gap, Gen.Int[0, 2], Gen.Frequency((6, Gen.Const(true)), (1, Gen.Const(false))),
                Gen.Double[-1.5, 0.1], Gen.Enum<ArchiveReason>(), Gen.Int[1, 2],
                Gen.Select(Gen.Double[-0.5, 1.5], Gen.Frequency((8, Gen.Const(true)), (1, Gen.Const(false)))))
            .Select(t => new Command(t.Item1, t.Item2, t.Item3, t.Item4, t.Item5, t.Item6, t.Item7, t.Item8.Item1, t.Item8.Item2));

    public static readonly Gen<Scenario> GenScenario =
        Gen.Select(GenSchedule, Gen.Double[-1.5, 2.0], GenCommand.Array[1, 40])
            .Select((schedule, assignAt, commands) => new Scenario(schedule, assignAt, commands));

    private static readonly Instant Latest = Instant.FromUtc(9000, 1, 1, 0, 0);

    /// <summary>An instant <paramref name="units"/> scales after <paramref name="from"/>, in whole milliseconds, at most 5 years on.</summary>
    public static Instant After(Instant from, Duration scale, double units)
    {
        var ms = Math.Clamp(units * scale.TotalMilliseconds, -5 * 366 * 86_400_000.0, 5 * 366 * 86_400_000.0);
        var result = from + Duration.FromMilliseconds((long)Math.Round(ms));
        return result > Latest ? Latest : result;
    }

    /// <summary>Runs a scenario through <see cref="EnrolmentRules"/>, applying each decision's events with Fold.</summary>
    public static Trace Run(Scenario scenario)
    {
        var schedule = scenario.Schedule;
        var scale = Scale(schedule);
        var now = After(schedule.AvailableDate, scale, scenario.AssignAt);
        var assigned = EnrolmentRules.Assign(EnrolmentId, AssignmentId, UserId, "aud-1", ContentId, schedule, now);
        var initial = EnrolmentState.Fold(null, assigned);
        var state = initial;
        var steps = new List<Step>(scenario.Commands.Length);
        foreach (var command in scenario.Commands)
        {
            now = After(now, scale, command.Gap);
            var decision = Decide(state, command, now, scale);
            var after = decision.Events.Aggregate(state, EnrolmentState.Fold);
            steps.Add(new Step(command, now, state, decision, after));
            state = after;
        }
        return new Trace(scenario, assigned, initial, steps);
    }

    public static Decision Decide(EnrolmentState state, Command command, Instant now, Duration scale) => command.Kind switch
    {
        CommandKind.Tick => EnrolmentRules.Tick(state, now),
        CommandKind.Complete => EnrolmentRules.Complete(state, CompletionOf(command, now, scale), now),
        CommandKind.Remind => EnrolmentRules.Remind(state, now),
        CommandKind.Archive => EnrolmentRules.Archive(state, command.Reason, now),
        CommandKind.Reinstate => EnrolmentRules.Reinstate(state, $"aud-{command.AudienceIndex}", now),
        CommandKind.Waive => EnrolmentRules.Waive(state, ReasonOf(command), now),
        CommandKind.Extend => EnrolmentRules.Extend(state, ExtendedDueOf(state, command, now, scale), ReasonOf(command), now),
        _ => throw new ArgumentOutOfRangeException(nameof(command), command.Kind, null),
    };

    /// <summary>A valid reason, or (sometimes) an empty or over-long one.</summary>
    public static string ReasonOf(Command command) => command.ReasonValid ? "holds the certificate" : command.Gap > 0.3 ? new string('x', 501) : " ";

    /// <summary>
    /// The requested due date: <see cref="Command.DueOffset"/> scales from the current due date, or from now when that
    /// has passed (or there is none), often too early or too late on purpose.
    /// </summary>
    public static Instant ExtendedDueOf(EnrolmentState state, Command command, Instant now, Duration scale) =>
        After(state.DueDate is { } due && due > now ? due : now, scale, command.DueOffset);

    public static Completion CompletionOf(Command command, Instant now, Duration scale) => new(
        $"c{command.CompletionIndex}",
        command.ContentMatches ? ContentId : "content-2",
        After(now, scale, command.CompletedAtOffset),
        command.CompletionIndex == 0 ? null : command.CompletionIndex * 10.0);

    /// <summary>Samples scenarios and checks <paramref name="property"/> on each run.</summary>
    public static void Check(Action<Trace> property, long iter = 1500) =>
        GenScenario.Sample(s => property(Run(s)), iter: iter, print: s => s.ToString());
}
