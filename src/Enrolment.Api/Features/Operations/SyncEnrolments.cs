using System.Text.Json.Serialization;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Api.Features.Assignments;
using Enrolment.Api.Features.Audiences;
using Enrolment.Api.Features.Completions;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Domain;
using Marten;
using NodaTime;
using Wolverine;

namespace Enrolment.Api.Features.Operations;

/// <summary>
/// Bring the enrolments of these users in line with the audience membership and the assignment(s), as they are
/// when the batch runs. The state decides, so batches can run in any order, twice, or after a crash.
/// <see cref="StartedBy"/> is the credential whose request started the operation: its events name it (null in batches
/// queued before actors were recorded).
/// </summary>
public sealed record SyncEnrolments(Guid OperationId, int Batch, string AudienceId, Guid? AssignmentId, string[] UserIds, Compliance.Credential? StartedBy = null);

public static class SyncEnrolmentsHandler
{
    public static async Task Handle(SyncEnrolments batch, IDocumentSession session, IMessageBus bus, IClock clock, ILogger<SyncEnrolments> logger, CancellationToken ct)
    {
        var now = clock.GetCurrentInstant();
        var tenantId = session.TenantId;
        // Rule 1 of the one writer: these users' locks before any read. A completion of one of them either committed
        // before (it is among the earlier completions read below) or waits until this batch commits (and then finds the
        // enrolments it created or reinstated). The membership and the assignments are read after the locks too.
        var locks = await EnrolmentWriter.LockUsers(session, batch.UserIds, ct);

        // Rule 4: the assignments decided for are locked shared and read after the lock, so a removal either committed
        // before (they read as removed) or waits for this batch (and then archives what it enrolled).
        var assignmentIds = batch.AssignmentId is { } only
            ? [only]
            : await session.Query<Assignment>().Where(a => a.AudienceId == batch.AudienceId).Select(a => a.Id).ToListAsync(ct);
        await EnrolmentWriter.LockAssignments(session, assignmentIds, shared: true, ct);
        var assignments = (await session.LoadManyAsync<Assignment>(ct, assignmentIds)).ToList();

        var memberKeys = batch.UserIds.Select(u => AudienceMember.Key(batch.AudienceId, u)).ToArray();
        var members = (await session.LoadManyAsync<AudienceMember>(ct, memberKeys)).Select(m => m.UserId).ToHashSet(StringComparer.Ordinal);

        var wanted = new List<(Assignment Assignment, string UserId, Guid EnrolmentId, bool Active)>();
        foreach (var assignment in assignments)
        foreach (var userId in batch.UserIds)
            wanted.Add((assignment, userId, Ids.EnrolmentId(tenantId, assignment.Id, userId),
                assignment.IsActive && assignment.AudienceId == batch.AudienceId && members.Contains(userId)));

        // One read of the documents with their stream versions: what exists, and what the set-based archive/reinstate appends to.
        var loaded = await EnrolmentWriter.Load(session, wanted.Select(w => w.EnrolmentId).Distinct().ToArray(), ct);

        var toStart = new List<(Guid EnrolmentId, Assignment Assignment, string UserId)>();
        var toChange = new Dictionary<Guid, (bool Active, Assignment Assignment, string UserId)>();
        foreach (var w in wanted)
        {
            if (!loaded.TryGetValue(w.EnrolmentId, out var stream))
            {
                if (w.Active) toStart.Add((w.EnrolmentId, w.Assignment, w.UserId));
            }
            else if (w.Active == (stream.State.Status == EnrolmentStatus.Archived))
            {
                toChange[w.EnrolmentId] = (w.Active, w.Assignment, w.UserId);
            }
        }

        // Completions recorded before these users were enrolled (or while they were archived) count for them now.
        var joining = toStart.Select(s => s.UserId).Concat(toChange.Values.Where(c => c.Active).Select(c => c.UserId)).Distinct().ToArray();
        var earlier = await EarlierCompletions.For(session, joining, assignments.Select(a => a.PrimaryContentId).Distinct().ToArray(), ct);

        // New enrolments are most of a large fan-out: started together by COPY in this handler's transaction.
        await EnrolmentWriter.Start(session, bus, locks, toStart.Select(s => EnrolmentRules.Enrol(s.EnrolmentId, s.Assignment.Id, s.UserId, batch.AudienceId,
            s.Assignment.PrimaryContentId, s.Assignment.ToSchedule(), earlier.Of(s.UserId, s.Assignment.PrimaryContentId), now)).ToList(), now, ct);
        var changed = toStart.Count;

        // Archive and reinstate set-based too: one read, one guarded version update, one COPY, one document update.
        var decided = await EnrolmentWriter.Change(session, bus, toChange.Keys.ToArray(), loaded, state =>
        {
            var (active, assignment, userId) = toChange[state.Id];
            return active
                ? EnrolmentRules.Rejoin(state, batch.AudienceId, earlier.Of(userId, assignment.PrimaryContentId), now)
                : EnrolmentRules.Archive(state, assignment.IsActive ? ArchiveReason.LeftAudience : ArchiveReason.AssignmentRemoved, now);
        }, now, ct, locks);
        changed += decided.Count(d => d.Changed);

        session.Store(new FanOutBatchDone { Id = $"{batch.OperationId:N}/{batch.Batch}", OperationId = batch.OperationId, Changed = changed, CompletedAt = now });
        logger.LogInformation("Fan-out {OperationId} batch {Batch}: {Users} users, {Changed} enrolments changed", batch.OperationId, batch.Batch, batch.UserIds.Length, changed);
    }
}
