using Enrolment.Domain;
using JasperFx.Events.Projections;
using Marten;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>
/// Refuses to start when an inline projection other than <see cref="EnrolmentProjection"/> takes enrolment events.
/// <see cref="EnrolmentWriter"/>'s set-based paths (fan-out batches, time-driven transitions, several completions at once)
/// write mt_events and the enrolment documents by COPY and UPDATE, below Marten's append: an inline projection added
/// later would silently miss every event they write. Project other read models of enrolment events asynchronously
/// (as the summaries are), or teach the set-based paths to write them.
/// </summary>
public sealed class OneProjectionGuard(IDocumentStore store) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var offending = Offending(store).ToList();
        if (offending.Count > 0)
            throw new InvalidOperationException(
                $"Inline projection(s) {string.Join(", ", offending)} take enrolment events, which the set-based writes of EnrolmentWriter " +
                "bypass (they would miss every fan-out and time-driven event). Make them asynchronous (ProjectionLifecycle.Async).");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The names of inline projections, other than the enrolment document's, whose events include an enrolment event (or are not filtered at all).</summary>
    public static IEnumerable<string> Offending(IDocumentStore store)
    {
        foreach (var source in Infrastructure.Sql.MartenInternals.Options(store).Projections.All)
        {
            if (source.Lifecycle != ProjectionLifecycle.Inline || source is EnrolmentProjection) continue;
            var included = (source as EventFilterable)?.IncludedEventTypes;
            if (included is null || included.Count == 0 || included.Intersect(EnrolmentEvents.Types).Any())
                yield return source.GetType().Name;
        }
    }
}
