using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.MartenTables;
using Enrolment.Domain;
using Marten;
using NodaTime;
using Wolverine;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>
/// <see cref="EnrolmentCommands.Decide"/> for batches that change many enrolments at once (time-driven transitions,
/// fan-out archive and reinstate): the same rules decide from each state, but the batch is read in one query and
/// written set-based (<see cref="StreamAppend"/>), and its integration events go into the same transaction, set-based too (<see cref="IntegrationEventQueue"/>).
/// Any stream changed meanwhile fails the whole batch with a ConcurrencyException, so the caller retries or falls back
/// to the ordinary path; nothing of a failed batch is written.
/// </summary>
public static class BulkEnrolmentCommands
{
    public static async Task<IReadOnlyList<Decided>> Decide(IDocumentSession session, IMessageBus bus, IReadOnlyList<Guid> ids,
        Func<EnrolmentState, Decision> decide, Instant now, CancellationToken ct) =>
        ids.Count == 0 ? [] : await Decide(session, bus, ids, await StreamAppend.Load(session, ids, ct), decide, now, ct);

    /// <summary>The same, for streams the caller has already read with <see cref="StreamAppend.Load"/> in this session.</summary>
    public static async Task<IReadOnlyList<Decided>> Decide(IDocumentSession session, IMessageBus bus, IReadOnlyList<Guid> ids,
        IReadOnlyDictionary<Guid, StreamAppend.Loaded> loaded, Func<EnrolmentState, Decision> decide, Instant now, CancellationToken ct)
    {
        if (ids.Count == 0) return [];
        var results = new List<Decided>(ids.Count);
        var appends = new List<StreamAppend.Append>();
        foreach (var id in ids)
        {
            if (!loaded.TryGetValue(id, out var stream)) { results.Add(new Decided(id, null, Decision.Nothing, null)); continue; }
            var decision = decide(stream.State);
            var after = decision.Events.Aggregate(stream.State, EnrolmentState.Fold);
            results.Add(new Decided(id, stream.State, decision, after));
            if (decision.Events.Count > 0) appends.Add(new StreamAppend.Append(id, stream.Version, decision.Events, after));
        }
        await StreamAppend.Write(session, appends, now, ct);
        var messages = new List<object>(appends.Count);
        foreach (var d in results.Where(d => d.Changed))
            EnrolmentChanges.Collect(messages, session.TenantId, d.Before!, d.Decision.Events, loaded[d.Id].Version);
        await IntegrationEventQueue.Of(bus).Write(session, bus, messages);
        return results;
    }
}
