using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Enrolment.Reliability.Harness;

/// <summary>The run as a whole: when, on what, with which seed, and each scenario's result.</summary>
public sealed record RunReport(
    DateTimeOffset StartedAt,
    DateTimeOffset FinishedAt,
    int Seed,
    string Machine,
    string Service,
    IReadOnlyList<string> Selected,
    IReadOnlyList<ScenarioResult> Results)
{
    public bool Passed => Results.All(r => r.Passed);
}

/// <summary>Writes report.md (for people) and report.json (for tools) into the output folder.</summary>
public static class ReportWriter
{
    public static async Task Write(string directory, RunReport run)
    {
        Directory.CreateDirectory(directory);
        await File.WriteAllTextAsync(Path.Combine(directory, "report.md"), Markdown(run));
        await File.WriteAllTextAsync(Path.Combine(directory, "report.json"), JsonSerializer.Serialize(Json(run), new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = true }));
    }

    private static object Json(RunReport run) => new
    {
        run.StartedAt,
        run.FinishedAt,
        durationSeconds = Math.Round((run.FinishedAt - run.StartedAt).TotalSeconds, 1),
        run.Seed,
        run.Machine,
        run.Service,
        scenarios = run.Results.Select(r => new
        {
            name = r.Scenario,
            r.Promise,
            r.Passed,
            durationSeconds = Math.Round(r.Duration.TotalSeconds, 1),
            figures = r.Figures.Select(f => new { f.Name, f.Value, f.Goal, met = Met(r, f) }),
            r.Findings,
        }),
        run.Passed,
    };

    // Where the scenario did not say, a figure with a goal is met if the scenario passed, and unknown otherwise.
    private static bool? Met(ScenarioResult r, Figure f) =>
        f.Goal.Length == 0 ? null : f.Met ?? (r.Passed ? true : null);

    private static string Markdown(RunReport run)
    {
        var s = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        s.AppendLine("# Reliability report");
        s.AppendLine();
        s.AppendLine(inv, $"- Run: {run.StartedAt:yyyy-MM-dd HH:mm:ss} → {run.FinishedAt:HH:mm:ss} UTC ({(run.FinishedAt - run.StartedAt).TotalMinutes:0.0} min), seed {run.Seed} (`./build/reliability.sh --seed {run.Seed}` replays the random choices)");
        s.AppendLine(inv, $"- Machine: {run.Machine}");
        s.AppendLine(inv, $"- Service: {run.Service}");
        s.AppendLine(inv, $"- Scenarios: {string.Join(", ", run.Selected)}");
        s.AppendLine(inv, $"- Result: **{(run.Passed ? "every scenario met its goals" : $"{run.Results.Count(r => !r.Passed)} of {run.Results.Count} scenarios missed a goal")}**");
        s.AppendLine();
        s.AppendLine("| scenario | promise | result | time |");
        s.AppendLine("| --- | --- | --- | ---: |");
        foreach (var r in run.Results)
            s.AppendLine(inv, $"| {r.Scenario} | {Cell(r.Promise)} | {(r.Passed ? "pass" : "**FAIL**")} | {r.Duration.TotalSeconds:0} s |");

        foreach (var r in run.Results)
        {
            s.AppendLine();
            s.AppendLine(inv, $"## {r.Scenario}: {(r.Passed ? "pass" : "FAIL")}");
            s.AppendLine();
            s.AppendLine(inv, $"Promise: {r.Promise}");
            s.AppendLine();
            s.AppendLine("| figure | value | goal | met |");
            s.AppendLine("| --- | ---: | --- | --- |");
            foreach (var f in r.Figures)
                s.AppendLine(inv, $"| {Cell(f.Name)} | {Cell(f.Value)} | {Cell(f.Goal)} | {(f.Goal.Length == 0 ? "" : Met(r, f) switch { true => "yes", false => "**no**", null => "?" })} |");
            if (r.Findings.Count > 0)
            {
                s.AppendLine();
                s.AppendLine("Findings:");
                s.AppendLine();
                foreach (var f in r.Findings) s.AppendLine(inv, $"- {f}");
            }
        }
        return s.ToString();
    }

    private static string Cell(string text) => text.Replace("|", "\\|", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
}
