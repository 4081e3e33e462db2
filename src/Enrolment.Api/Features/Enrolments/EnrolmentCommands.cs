using Enrolment.Api.Infrastructure;
using Enrolment.Domain;
using Marten;
using Wolverine;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>What a command did to one enrolment: its state before (null: no such stream), the decision, its state after.</summary>
public sealed record Decided(Guid Id, EnrolmentState? Before, Decision Decision, EnrolmentState? After)
{
    public bool Changed => Decision.Events.Count > 0;
}

/// <summary>
/// The one load–decide–append path of every write to existing enrolments (endpoints, completions from HTTP and the bus,
/// fan-out batches, time-driven transitions): fetch the streams for writing in one round trip (optimistic concurrency
/// from the versions read), let <see cref="EnrolmentRules"/> decide from each state, append what they decided together
/// with its integration events (<see cref="EnrolmentChanges"/>). The caller's Wolverine transaction commits it all.
/// </summary>
public static class EnrolmentCommands
{
    public static async Task<IReadOnlyList<Decided>> Decide(IDocumentSession session, IMessageBus bus, IReadOnlyList<Guid> ids,
        Func<EnrolmentState, Decision> decide, CancellationToken ct)
    {
        if (ids.Count == 0) return [];
        var batch = session.CreateBatchQuery();
        var fetches = ids.Select(id => batch.Events.FetchForWriting<EnrolmentState>(id)).ToArray();
        await batch.Execute(ct);

        var results = new List<Decided>(ids.Count);
        for (var i = 0; i < ids.Count; i++)
        {
            var stream = await fetches[i];
            if (stream.Aggregate is not { } before) { results.Add(new Decided(ids[i], null, Decision.Nothing, null)); continue; }
            var decision = decide(before);
            var after = decision.Events.Aggregate(before, EnrolmentState.Fold);
            await EnrolmentChanges.Append(session, stream, decision.Events, bus);
            results.Add(new Decided(ids[i], before, decision, after));
        }
        return results;
    }

    /// <summary>
    /// One enrolment addressed by the route: 422 for malformed ids, 404 when the tenant has no such enrolment in that
    /// assignment, the rejection's problem document, or 200 with the enrolment after the change.
    /// </summary>
    public static async Task<IResult> DecideOne(string assignmentId, string enrolmentId, IDocumentSession session, IMessageBus bus,
        Func<EnrolmentState, Decision> decide, CancellationToken ct)
    {
        if (!RouteIds.TryGuid(assignmentId, "assignmentId", out var aid, out var problem)) return problem!;
        if (!RouteIds.TryGuid(enrolmentId, "enrolmentId", out var eid, out problem)) return problem!;

        // The assignment is checked before deciding, so that another assignment's enrolment is a 404, never a change.
        var decided = (await Decide(session, bus, [eid], state => state.AssignmentId == aid ? decide(state) : Decision.Nothing, ct))[0];
        if (decided.Before is null || decided.Before.AssignmentId != aid)
            return Problems.NotFound($"Assignment {assignmentId} has no enrolment {enrolmentId}.");
        if (decided.Decision.Rejection is { } rejection) return Problems.From(rejection);
        return Results.Ok(EnrolmentView.From(decided.After!));
    }
}
