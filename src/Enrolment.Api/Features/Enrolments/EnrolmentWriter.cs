using Enrolment.Api.Features.Messaging;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using Marten;
using NodaTime;
using Wolverine;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>What a write did to one enrolment: its state before (null: no such stream), the decision, its state after.</summary>
public sealed record Decided(Guid Id, EnrolmentState? Before, Decision Decision, EnrolmentState? After)
{
    public bool Changed => Decision.Events.Count > 0;
}

/// <summary>
/// The users whose lock rows this session's transaction holds (<see cref="EnrolmentWriter.LockUsers"/>): what a write
/// must show before it creates, reinstates or completes one of their enrolments.
/// </summary>
public sealed class UserLocks
{
    private readonly HashSet<string> _users;

    internal UserLocks(IDocumentSession session, IEnumerable<string> users) =>
        (Session, _users) = (session, users.ToHashSet(StringComparer.Ordinal));

    internal IDocumentSession Session { get; }

    public bool Holds(string userId) => _users.Contains(userId);
}

/// <summary>An audience this session's transaction holds (<see cref="EnrolmentWriter.LockAudience"/>): what a membership change must show.</summary>
public sealed record AudienceLock(IDocumentSession Session, string AudienceId);

/// <summary>
/// The one writer of enrolment streams. Every caller (the HTTP endpoints, completions from HTTP, Thrive, bulk and the
/// bus, fan-out batches, the clock) loads, decides with <see cref="EnrolmentRules"/>, appends and publishes through it,
/// in the caller's Wolverine transaction. Its concurrency rule (docs/architecture.md, "The one writer"):
/// <list type="number">
/// <item>A write that may create, reinstate or complete enrolments of a user first locks that user's row
/// (<see cref="LockUsers"/>, key (tenant, user)) and holds it until commit; it reads what it decides from only after that.
/// So a completion and the fan-out batch that enrols or reinstates its user run one after the other, and the later one
/// sees what the earlier committed: the completion finds the enrolment, or the batch finds the completion.</item>
/// <item>Every append to an existing stream is optimistic on the stream version it read. The loser's whole transaction
/// rolls back (<see cref="JasperFx.ConcurrencyException"/>): a request answers 409, a message is retried and decides again.</item>
/// <item>A new stream's id is derived from (tenant, assignment, user), so two creators of one enrolment collide on the
/// stream table's key and the second loses as in 2.</item>
/// <item>Fan-outs decide whom to reach from membership and assignments: membership changes and assignment creation and
/// removal lock the audience (<see cref="LockAudience"/>), removal locks the assignment exclusively and every batch
/// locks its assignments shared (<see cref="LockAssignments"/>), each before reading.</item>
/// </list>
/// It picks the strategy itself: one stream through Marten's own append (FetchForWriting, the inline projection);
/// several set-based (<see cref="ExistingStreams"/>, <see cref="NewStreams"/>), which write the same rows.
/// </summary>
public static class EnrolmentWriter
{
    /// <summary>Rule 1: locks these users for the rest of the session's transaction (which it opens). Call before any read the decision uses.</summary>
    public static async Task<UserLocks> LockUsers(IDocumentSession session, IReadOnlyCollection<string> userIds, CancellationToken ct)
    {
        await WriteLockRows.Lock(session, WriteLockRows.User, userIds, shared: false, ct);
        return new UserLocks(session, userIds);
    }

    /// <summary>
    /// Rule 4: who fans out to whom. A membership change and an assignment's creation or removal lock the audience
    /// (exclusively) before reading its members or assignments, so each sees what the other committed: a user who joins
    /// while an assignment is created is enrolled by one of the two fan-outs.
    /// </summary>
    public static async Task<AudienceLock> LockAudience(IDocumentSession session, string audienceId, CancellationToken ct)
    {
        await WriteLockRows.Lock(session, WriteLockRows.Audience, [audienceId], shared: false, ct);
        return new AudienceLock(session, audienceId);
    }

    /// <summary>Several audiences at once, in key order (a SCIM user leaving or rejoining every group it is in).</summary>
    public static async Task<IReadOnlyList<AudienceLock>> LockAudiences(IDocumentSession session, IReadOnlyCollection<string> audienceIds, CancellationToken ct)
    {
        await WriteLockRows.Lock(session, WriteLockRows.Audience, audienceIds, shared: false, ct);
        return audienceIds.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Select(a => new AudienceLock(session, a)).ToList();
    }

    /// <summary>
    /// Rule 4, for assignments: their removal locks them exclusively before reading which enrolments to archive; a
    /// fan-out batch locks the assignments it decides for shared, and reads them after the lock. So a batch enrolling a
    /// user in an assignment being removed either commits first (and the removal archives that enrolment) or sees the
    /// assignment removed (and enrols nobody).
    /// </summary>
    public static Task LockAssignments(IDocumentSession session, IReadOnlyCollection<Guid> assignmentIds, bool shared, CancellationToken ct) =>
        WriteLockRows.Lock(session, WriteLockRows.Assignment, assignmentIds.Select(id => id.ToString("N")).ToArray(), shared, ct);

    /// <summary>The enrolments' documents with their stream versions, in one query (in the session's transaction).</summary>
    public static Task<Dictionary<Guid, ExistingStreams.Loaded>> Load(IDocumentSession session, IReadOnlyCollection<Guid> ids, CancellationToken ct) =>
        ExistingStreams.Load(session, ids, ct);

    /// <summary>
    /// Decides for each of these existing enrolments and appends what was decided, with its integration events. Ids with
    /// no stream decide nothing. <paramref name="locks"/> must hold the user of every enrolment the decision completes
    /// or reinstates (rule 1).
    /// </summary>
    public static async Task<IReadOnlyList<Decided>> Change(IDocumentSession session, IMessageBus bus, IReadOnlyList<Guid> ids,
        Func<EnrolmentState, Decision> decide, Instant now, CancellationToken ct, UserLocks? locks = null)
    {
        if (ids.Count == 0) return [];
        if (ids.Count == 1) return [await ChangeOneStream(session, bus, ids[0], decide, locks, ct)];
        return await Change(session, bus, ids, await Load(session, ids, ct), decide, now, ct, locks);
    }

    /// <summary>The same, set-based, for streams the caller has already read with <see cref="Load"/> in this session.</summary>
    public static async Task<IReadOnlyList<Decided>> Change(IDocumentSession session, IMessageBus bus, IReadOnlyList<Guid> ids,
        IReadOnlyDictionary<Guid, ExistingStreams.Loaded> loaded, Func<EnrolmentState, Decision> decide, Instant now, CancellationToken ct, UserLocks? locks = null)
    {
        if (ids.Count == 0) return [];
        var results = new List<Decided>(ids.Count);
        var appends = new List<ExistingStreams.Append>();
        var messages = new List<object>();
        foreach (var id in ids)
        {
            if (!loaded.TryGetValue(id, out var stream)) { results.Add(new Decided(id, null, Decision.Nothing, null)); continue; }
            var decision = decide(stream.State);
            if (decision.Events.Count == 0) { results.Add(new Decided(id, stream.State, decision, stream.State)); continue; }
            RequireLock(session, locks, stream.State.UserId, decision.Events);
            var after = IntegrationEvents.Collect(messages, session.TenantId, stream.State, decision.Events, stream.Version);
            results.Add(new Decided(id, stream.State, decision, after));
            appends.Add(new ExistingStreams.Append(id, stream.Version, decision.Events, after));
        }
        await ExistingStreams.Write(session, appends, now, ct);
        await IntegrationEventQueue.Of(bus).Write(session, bus, messages);
        return results;
    }

    /// <summary>
    /// Starts new enrolment streams (each its events from the first), with their integration events. Rule 1: the
    /// session must hold every stream's user (a new enrolment is given the completions recorded before it).
    /// </summary>
    public static async Task Start(IDocumentSession session, IMessageBus bus, UserLocks locks, IReadOnlyList<IReadOnlyList<IEnrolmentEvent>> streams, Instant now, CancellationToken ct)
    {
        if (streams.Count == 0) return;
        foreach (var stream in streams)
            RequireLock(session, locks, ((EnrolmentAssigned)stream[0]).UserId, stream);
        var messages = new List<object>(streams.Sum(s => s.Count));
        var states = streams.Select(events => IntegrationEvents.Collect(messages, session.TenantId, null, events, 0)).ToList();
        await NewStreams.Copy(session, streams, states, now, ct);
        await IntegrationEventQueue.Of(bus).Write(session, bus, messages);
    }

    /// <summary>
    /// One enrolment addressed by the route: 422 for malformed ids, 404 when the tenant has no such enrolment in that
    /// assignment, the rejection's problem document, or 200 with the enrolment after the change.
    /// </summary>
    public static async Task<IResult> ChangeOne(string assignmentId, string enrolmentId, IDocumentSession session, IMessageBus bus,
        Func<EnrolmentState, Decision> decide, CancellationToken ct)
    {
        if (!RouteIds.TryGuid(assignmentId, "assignmentId", out var aid, out var problem)) return problem!;
        if (!RouteIds.TryGuid(enrolmentId, "enrolmentId", out var eid, out problem)) return problem!;

        // The assignment is checked before deciding, so that another assignment's enrolment is a 404, never a change.
        var decided = await ChangeOneStream(session, bus, eid, state => state.AssignmentId == aid ? decide(state) : Decision.Nothing, null, ct);
        if (decided.Before is null || decided.Before.AssignmentId != aid)
            return Problems.NotFound($"Assignment {assignmentId} has no enrolment {enrolmentId}.");
        if (decided.Decision.Rejection is { } rejection) return Problems.From(rejection);
        return Results.Ok(EnrolmentView.From(decided.After!));
    }

    /// <summary>One stream through Marten's own append: FetchForWriting (optimistic on the version read), the inline projection writes the document.</summary>
    private static async Task<Decided> ChangeOneStream(IDocumentSession session, IMessageBus bus, Guid id, Func<EnrolmentState, Decision> decide, UserLocks? locks, CancellationToken ct)
    {
        var stream = await session.Events.FetchForWriting<EnrolmentState>(id, ct);
        if (stream.Aggregate is not { } before) return new Decided(id, null, Decision.Nothing, null);
        var decision = decide(before);
        if (decision.Events.Count == 0) return new Decided(id, before, decision, before);
        RequireLock(session, locks, before.UserId, decision.Events);
        var messages = new List<object>(decision.Events.Count);
        var after = IntegrationEvents.Collect(messages, session.TenantId, before, decision.Events, stream.StartingVersion ?? 0);
        stream.AppendMany(decision.Events.Cast<object>().ToArray());
        await IntegrationEventQueue.Of(bus).Write(session, bus, messages);
        return new Decided(id, before, decision, after);
    }

    /// <summary>Rule 1, checked where it matters: a write that completes or reinstates (or starts) an enrolment without its user's lock is a bug, not a race.</summary>
    private static void RequireLock(IDocumentSession session, UserLocks? locks, string userId, IReadOnlyList<IEnrolmentEvent> events)
    {
        // Starting a stream (EnrolmentAssigned) applies the completions recorded before it, as reinstating does.
        var needsLock = events.Any(e => e is EnrolmentAssigned or EnrolmentCompleted or EnrolmentReinstated);
        if (!needsLock) return;
        if (locks is null || !ReferenceEquals(locks.Session, session) || !locks.Holds(userId))
            throw new InvalidOperationException(
                $"An enrolment of user {userId} was about to be created, completed or reinstated without holding that user's lock (EnrolmentWriter.LockUsers): " +
                "a completion recorded at the same time could be lost. This is a bug in the caller.");
    }
}
