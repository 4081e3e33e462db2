using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Features.Operations;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine;
using Wolverine.Http;

namespace Enrolment.Api.Features.Audiences;

public sealed record MembersRequest(string[]? UserIds);

/// <summary>The audience's current members, in user id order.</summary>
public sealed record AudienceMembers(string AudienceId, string[] UserIds);

public sealed record MembershipChange(string AudienceId, int Joined, int Left, OperationStatus Operation);

/// <summary>
/// Membership changes are stored at once; the enrolments they create, reinstate or archive follow in durable
/// batches (<see cref="SyncEnrolments"/>). 202 Accepted with the operation to poll.
/// </summary>
public static class Membership
{
    public const int MaxUsersPerRequest = 100_000;

    public static bool TryValidate(string audienceId, MembersRequest? request, out string[] userIds, out IResult? problem)
    {
        userIds = [];
        if (!RouteIds.TryExternal(audienceId, "audienceId", out var p)) { problem = p; return false; }
        if (request?.UserIds is null) { problem = Problems.Validation("userIds", "userIds is required: an array of user ids."); return false; }
        if (request.UserIds.Length > MaxUsersPerRequest) { problem = Problems.Validation("userIds", $"At most {MaxUsersPerRequest} userIds per request."); return false; }
        var invalid = request.UserIds.Where(u => !Ids.IsValidExternalId(u)).Take(5).ToArray();
        if (invalid.Length > 0) { problem = Problems.Validation("userIds", $"Each user id must be 1–64 characters of A–Z, a–z, 0–9 and . _ : @ - ({invalid.Length} or more are not)."); return false; }
        userIds = request.UserIds.Distinct(StringComparer.Ordinal).ToArray();
        problem = null;
        return true;
    }

    public static async Task<IResult> Apply(IDocumentSession session, IMessageBus bus, Instant now, AudienceLock held, IReadOnlyCollection<string> joins, IReadOnlyCollection<string> leaves, CancellationToken ct)
    {
        var change = await Change(session, bus, now, held, joins, leaves, ct);
        return Results.Accepted(change.Operation.Href, change);
    }

    /// <summary>
    /// Stores the membership change and starts its fan-out; Wolverine commits both with the request. Rule 4 of the one
    /// writer (Features/Enrolments/EnrolmentWriter): the caller holds the audience's lock, taken before it read the
    /// members, so an assignment created meanwhile either sees these members or its fan-out is seen by these batches.
    /// </summary>
    public static async Task<MembershipChange> Change(IDocumentSession session, IMessageBus bus, Instant now, AudienceLock held, IReadOnlyCollection<string> joins, IReadOnlyCollection<string> leaves, CancellationToken ct)
    {
        if (!ReferenceEquals(held.Session, session))
            throw new InvalidOperationException($"A membership change of audience {held.AudienceId} must hold its lock in its own session (EnrolmentWriter.LockAudience). This is a bug in the caller.");
        var audienceId = held.AudienceId;
        // Set-based, a chunk of users per statement, in user-id order (no deadlocks between concurrent changes).
        await AudienceMemberRows.Write(session, audienceId, joins, leaves, now, ct);
        var operation = await FanOut.Start(session, bus, FanOutKind.AudienceChanged, audienceId, null, joins.Concat(leaves).ToArray(), now);
        return new MembershipChange(audienceId, joins.Count, leaves.Count, OperationStatus.Started(operation));
    }

    /// <summary>
    /// For a change decided from the current members: locks the audience (so concurrent changes and assignment
    /// creations of it wait for each other), then reads them.
    /// </summary>
    public static async Task<(AudienceLock Held, HashSet<string> Members)> LockAndRead(IDocumentSession session, string audienceId, CancellationToken ct)
    {
        var held = await EnrolmentWriter.LockAudience(session, audienceId, ct);
        return (held, await Current(session, audienceId, ct));
    }

    public static async Task<HashSet<string>> Current(IQuerySession session, string audienceId, CancellationToken ct) =>
        (await session.Query<AudienceMember>().Where(m => m.AudienceId == audienceId).Select(m => m.UserId).ToListAsync(ct)).ToHashSet(StringComparer.Ordinal);
}

public static class ReplaceMembersEndpoint
{
    [ProducesResponseType<MembershipChange>(StatusCodes.Status202Accepted)]
    [WolverinePut("/audiences/{audienceId}/members", OperationId = "replaceAudienceMembers"), Authorize(Policy = AuthPolicies.Write)]
    [Tags("Audiences")]
    [EndpointSummary("Replace the member list: joins create or reinstate enrolments, leaves archive them.")]
    public static async Task<IResult> Put(string audienceId, MembersRequest? request, IDocumentSession session, IMessageBus bus, IClock clock, CancellationToken ct)
    {
        if (!Membership.TryValidate(audienceId, request, out var userIds, out var problem)) return problem!;
        var (held, current) = await Membership.LockAndRead(session, audienceId, ct);
        var wanted = userIds.ToHashSet(StringComparer.Ordinal);
        return await Membership.Apply(session, bus, clock.GetCurrentInstant(), held,
            wanted.Where(u => !current.Contains(u)).ToArray(), current.Where(u => !wanted.Contains(u)).ToArray(), ct);
    }
}

public static class AddMembersEndpoint
{
    [ProducesResponseType<MembershipChange>(StatusCodes.Status202Accepted)]
    [WolverinePost("/audiences/{audienceId}/members", OperationId = "addAudienceMembers"), Authorize(Policy = AuthPolicies.Write)]
    [Tags("Audiences")]
    [EndpointSummary("Add members: each new member is enrolled (or reinstated) in every active assignment of the audience.")]
    public static async Task<IResult> Post(string audienceId, MembersRequest? request, IDocumentSession session, IMessageBus bus, IClock clock, CancellationToken ct)
    {
        if (!Membership.TryValidate(audienceId, request, out var userIds, out var problem)) return problem!;
        var (held, current) = await Membership.LockAndRead(session, audienceId, ct);
        return await Membership.Apply(session, bus, clock.GetCurrentInstant(), held, userIds.Where(u => !current.Contains(u)).ToArray(), [], ct);
    }
}

public static class RemoveMemberEndpoint
{
    [ProducesResponseType<MembershipChange>(StatusCodes.Status202Accepted), ProducesResponseType(StatusCodes.Status404NotFound)]
    [WolverineDelete("/audiences/{audienceId}/members/{userId}", OperationId = "removeAudienceMember"), Authorize(Policy = AuthPolicies.Write)]
    [Tags("Audiences")]
    [EndpointSummary("Remove one member: their enrolments in the audience's assignments are archived.")]
    public static async Task<IResult> Delete(string audienceId, string userId, IDocumentSession session, IMessageBus bus, IClock clock, CancellationToken ct)
    {
        if (!RouteIds.TryExternal(audienceId, "audienceId", out var problem)) return problem!;
        if (!RouteIds.TryExternal(userId, "userId", out problem)) return problem!;
        var held = await EnrolmentWriter.LockAudience(session, audienceId, ct);
        if (await session.LoadAsync<AudienceMember>(AudienceMember.Key(audienceId, userId), ct) is null)
            return Problems.NotFound($"User {userId} is not a member of audience {audienceId}.");
        return await Membership.Apply(session, bus, clock.GetCurrentInstant(), held, [], [userId], ct);
    }
}

public static class GetMembersEndpoint
{
    [ProducesResponseType<AudienceMembers>(StatusCodes.Status200OK)]
    [WolverineGet("/audiences/{audienceId}/members", OperationId = "getAudienceMembers"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Audiences")]
    [EndpointSummary("The audience's current members, in user id order (an audience nobody joined has none).")]
    public static async Task<IResult> Get(string audienceId, IQuerySession session, CancellationToken ct)
    {
        if (!RouteIds.TryExternal(audienceId, "audienceId", out var problem)) return problem!;
        var members = await Membership.Current(session, audienceId, ct);
        return Results.Ok(new AudienceMembers(audienceId, members.Order(StringComparer.Ordinal).ToArray()));
    }
}
