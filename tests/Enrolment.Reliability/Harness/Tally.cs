using System.Globalization;

namespace Enrolment.Reliability.Harness;

/// <summary>Small formatting helpers for figures.</summary>
public static class Tally
{
    /// <summary>"200: 812, 409: 37, no answer: 2", by status code ascending.</summary>
    public static string ByStatus(IEnumerable<Outcome> outcomes) =>
        string.Join(", ", outcomes.GroupBy(o => o.Status).OrderBy(g => g.Key)
            .Select(g => $"{(g.Key == 0 ? "no answer" : g.Key.ToString(CultureInfo.InvariantCulture))}: {g.Count().ToString("N0", CultureInfo.InvariantCulture)}"))
        is { Length: > 0 } text ? text : "none";

    public static string N(int value) => value.ToString("N0", CultureInfo.InvariantCulture);

    public static string Seconds(TimeSpan? value) =>
        value is { } v ? v.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture) + " s" : "never";

    /// <summary>The first few items of a list for a finding, with how many more there are.</summary>
    public static string Sample(IReadOnlyCollection<string> items, int take = 5) =>
        string.Join("; ", items.Take(take)) + (items.Count > take ? $" (and {items.Count - take} more)" : "");
}
