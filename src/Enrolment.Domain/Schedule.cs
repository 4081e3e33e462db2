using System.Text.Json.Serialization;
using NodaTime;

namespace Enrolment.Domain;

/// <summary>
/// When an assignment's periods open and fall due. Period p opens at AvailableDate + p×Recurrence and is due
/// CompletionPeriod later (or, with an explicit DueDate, at DueDate + p×Recurrence). Periods are added to the
/// local date and time in the assignment's zone, so P1Y lands on the same local date next year and P1M from
/// 31 January lands on the last day of February.
/// </summary>
public sealed record Schedule(
    Instant AvailableDate,
    Period? CompletionPeriod,
    Instant? DueDate,
    Period? Recurrence,
    string TimeZone)
{
    public const string DefaultTimeZone = "Etc/UTC";

    [JsonIgnore]
    public bool IsRecurring => Recurrence is not null;

    private DateTimeZone Zone => DateTimeZoneProviders.Tzdb.GetZoneOrNull(TimeZone) ?? DateTimeZone.Utc;

    public Instant OpensAt(int period) =>
        period == 0 || Recurrence is null ? AvailableDate : Add(AvailableDate, Scale(Recurrence, period));

    public Instant? DueAt(int period)
    {
        var due = UncappedDueAt(period);
        if (due is null) return null;
        // Calendar months differ in length (P1M recurrence with P30D to complete, in February): a period is never
        // due after the next one opens, so periods never overlap.
        if (Recurrence is not null && period < MaxPeriod && OpensAt(period + 1) is var next && due > next) due = next;
        return due;
    }

    private Instant? UncappedDueAt(int period)
    {
        if (CompletionPeriod is not null) return Add(OpensAt(period), CompletionPeriod);
        if (DueDate is null) return null;
        if (period == 0 || Recurrence is null) return DueDate;
        // An explicit due date recurs like the available date. Where month ends or a clock change would put it
        // at or before its period's opening, it keeps the first period's elapsed length instead.
        var opens = OpensAt(period);
        var due = Add(DueDate.Value, Scale(Recurrence, period));
        return due > opens ? due : opens + (DueDate.Value - AvailableDate);
    }

    /// <summary>The period that has opened by <paramref name="now"/> (0 before the first opens).</summary>
    public int PeriodAt(Instant now)
    {
        if (Recurrence is null || now < OpensAt(1)) return 0;
        // OpensAt is monotonic in p: find a bound by doubling, then binary search (cheap even for PT30S over years).
        var low = 1;
        var high = 2;
        while (high < MaxPeriod && OpensAt(high) <= now) { low = high; high *= 2; }
        while (high - low > 1)
        {
            var mid = low + (high - low) / 2;
            if (OpensAt(mid) <= now) low = mid; else high = mid;
        }
        return low;
    }

    /// <summary>The largest period number the service computes (far beyond any real schedule).</summary>
    public const int MaxPeriod = 100_000_000;

    /// <summary>
    /// Date units (years, months, weeks, days) are added to the local date in the zone, so a P1Y lands on the same
    /// local date and a P1D keeps the wall-clock time across a daylight-saving change; time units (hours, minutes,
    /// seconds) are elapsed time, so PT1H is always one hour, even across a clock change.
    /// </summary>
    private Instant Add(Instant instant, Period period)
    {
        var zone = Zone;
        var datePart = new PeriodBuilder { Years = period.Years, Months = period.Months, Weeks = period.Weeks, Days = period.Days }.Build();
        var local = instant.InZone(zone).LocalDateTime;
        var shifted = datePart.Equals(Period.Zero) ? instant : local.Plus(datePart).InZoneLeniently(zone).ToInstant();
        var timePart = Duration.FromHours(period.Hours) + Duration.FromMinutes(period.Minutes) + Duration.FromSeconds(period.Seconds)
                       + Duration.FromMilliseconds(period.Milliseconds);
        return shifted + timePart;
    }

    private static Period Scale(Period period, int factor)
    {
        if (factor == 1) return period;
        return new PeriodBuilder
        {
            Years = checked(period.Years * factor),
            Months = checked(period.Months * factor),
            Weeks = checked(period.Weeks * factor),
            Days = checked(period.Days * factor),
            Hours = checked(period.Hours * factor),
            Minutes = checked(period.Minutes * factor),
            Seconds = checked(period.Seconds * factor),
            Milliseconds = checked(period.Milliseconds * factor),
        }.Build();
    }

    /// <summary>
    /// Checks the rules of an assignment's schedule; returns null when it is valid, else what is wrong.
    /// </summary>
    public static string? Validate(Instant availableDate, Period? completionPeriod, Instant? dueDate, Period? recurrence, string timeZone)
    {
        if (DateTimeZoneProviders.Tzdb.GetZoneOrNull(timeZone) is null)
            return $"timeZone '{timeZone}' is not a known IANA time zone (for example 'Europe/London' or 'Etc/UTC').";
        if (completionPeriod is not null && dueDate is not null)
            return "Give either completionPeriod or dueDate, not both.";
        if (completionPeriod is not null && !IsPositive(completionPeriod))
            return "completionPeriod must be a positive ISO-8601 period such as P30D.";
        if (recurrence is not null && !IsPositive(recurrence))
            return "recurrence must be a positive ISO-8601 period such as P1Y.";
        if (recurrence is not null && completionPeriod is null && dueDate is null)
            return "A recurring assignment needs a completionPeriod or a dueDate.";
        var schedule = new Schedule(availableDate, completionPeriod, dueDate, recurrence, timeZone);
        Instant? due;
        try { due = schedule.UncappedDueAt(0); _ = recurrence is null ? availableDate : schedule.OpensAt(1); }
        catch (Exception e) when (e is ArgumentException or OverflowException or InvalidOperationException)
        { return "The dates and periods reach beyond the supported range of dates."; }
        if (due is not null && due <= availableDate)
            return "dueDate must be after availableDate.";
        if (recurrence is not null && due is not null && schedule.OpensAt(1) < due)
            return "recurrence must not be shorter than the completion period: a period would open before the previous one is due.";
        return null;
    }

    private static bool IsPositive(Period period)
    {
        var parts = new long[] { period.Years, period.Months, period.Weeks, period.Days, period.Hours, period.Minutes, period.Seconds, period.Milliseconds, period.Ticks, period.Nanoseconds };
        return parts.All(p => p >= 0) && parts.Any(p => p > 0) && period.Ticks == 0 && period.Nanoseconds == 0;
    }
}
