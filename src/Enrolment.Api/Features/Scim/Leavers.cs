using Enrolment.Api.Features.Audiences;
using Enrolment.Api.Features.Enrolments;
using Marten;
using NodaTime;
using Wolverine;

namespace Enrolment.Api.Features.Scim;

/// <summary>
/// A deactivated (or deleted) SCIM user is a leaver: they stop counting as a member of every audience, through the same
/// membership change as DELETE /audiences/{id}/members/{userId} (so their enrolments are archived by the fan-out, history
/// kept). Their SCIM group memberships are remembered (<see cref="SuspendedMembership"/>); reactivation makes them members
/// again, a rejoin, and the fan-out reinstates their enrolments.
/// <para>
/// Races: the caller holds the user's lock (kind scim-user), which every SCIM change that adds this user to a group takes
/// before the group's audience lock; the audiences are locked here, in key order, and the memberships read again after
/// those locks, so a concurrent group PATCH either committed before (and is seen) or waits for this transaction (and then
/// sees the user inactive).
/// </para>
/// </summary>
public static class Leavers
{
    /// <summary>Leaves every audience. <paramref name="remember"/>: keep the memberships for a reactivation (deactivation), or not (deletion).</summary>
    public static async Task Leave(IDocumentSession session, IMessageBus bus, Instant now, string userId, bool remember, CancellationToken ct)
    {
        var audiences = await session.Query<AudienceMember>().Where(m => m.UserId == userId).Select(m => m.AudienceId).ToListAsync(ct);
        var held = await EnrolmentWriter.LockAudiences(session, audiences, ct);
        // Read again after the locks: a removal that committed meanwhile is not undone.
        var still = (await session.LoadManyAsync<AudienceMember>(ct, audiences.Select(a => AudienceMember.Key(a, userId)).ToArray()))
            .Select(m => m.AudienceId).ToHashSet(StringComparer.Ordinal);
        foreach (var audience in held.Where(h => still.Contains(h.AudienceId)))
        {
            await Membership.Change(session, bus, now, audience, [], [userId], ct);
            if (remember)
                session.Store(new SuspendedMembership { Id = SuspendedMembership.Key(audience.AudienceId, userId), AudienceId = audience.AudienceId, UserId = userId, SuspendedAt = now });
        }
        if (!remember) session.DeleteWhere<SuspendedMembership>(m => m.UserId == userId);
    }

    /// <summary>Rejoins every audience whose SCIM group kept the user while inactive.</summary>
    public static async Task Rejoin(IDocumentSession session, IMessageBus bus, Instant now, string userId, CancellationToken ct)
    {
        var audiences = await session.Query<SuspendedMembership>().Where(m => m.UserId == userId).Select(m => m.AudienceId).ToListAsync(ct);
        var held = await EnrolmentWriter.LockAudiences(session, audiences, ct);
        var still = (await session.LoadManyAsync<SuspendedMembership>(ct, audiences.Select(a => SuspendedMembership.Key(a, userId)).ToArray()))
            .Select(m => m.AudienceId).ToHashSet(StringComparer.Ordinal);
        foreach (var audience in held.Where(h => still.Contains(h.AudienceId)))
        {
            await Membership.Change(session, bus, now, audience, [userId], [], ct);
            session.Delete<SuspendedMembership>(SuspendedMembership.Key(audience.AudienceId, userId));
        }
    }
}
