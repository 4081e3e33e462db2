using Enrolment.Domain;
using JasperFx.Events;
using Marten;
using Marten.Events.Projections;

namespace Enrolment.Api.Features.Summaries;

public enum CompletionKind
{
    OnTime,
    Late,
    Waived,
}

/// <summary>What the summaries need to know of one enrolment to move it from one count to another: kept by <see cref="SummaryProjection"/> only.</summary>
public sealed class EnrolmentStanding
{
    public Guid Id { get; set; }
    public Guid AssignmentId { get; set; }
    public string UserId { get; set; } = "";
    public EnrolmentStatus Status { get; set; }
    public CompletionKind? Kind { get; set; }
}

/// <summary>The counts of an assignment's (id "a:{assignmentId}") or a user's (id "u:{userId}") enrolments by current status.</summary>
public sealed class EnrolmentSummary
{
    public string Id { get; set; } = "";
    public int Scheduled { get; set; }
    public int Open { get; set; }
    public int Overdue { get; set; }
    public int Complete { get; set; }
    public int Archived { get; set; }
    public int CompletedOnTime { get; set; }
    public int CompletedLate { get; set; }
    public int Waived { get; set; }

    public static string ForAssignment(Guid assignmentId) => $"a:{assignmentId}";
    public static string ForUser(string userId) => $"u:{userId}";

    public void Count(EnrolmentStatus status, CompletionKind? kind, int delta)
    {
        switch (status)
        {
            case EnrolmentStatus.Scheduled: Scheduled += delta; break;
            case EnrolmentStatus.Open: Open += delta; break;
            case EnrolmentStatus.Overdue: Overdue += delta; break;
            case EnrolmentStatus.Complete: Complete += delta; break;
            case EnrolmentStatus.Archived: Archived += delta; break;
        }
        if (status != EnrolmentStatus.Complete) return;
        switch (kind)
        {
            case CompletionKind.Late: CompletedLate += delta; break;
            case CompletionKind.Waived: Waived += delta; break;
            default: CompletedOnTime += delta; break;
        }
    }
}

/// <summary>
/// The assignment and user summaries, an async projection run by Marten's daemon: each enrolment event moves its
/// enrolment from the count of its previous status to that of its next (the domain's <see cref="EnrolmentEvents.StatusAfter"/>,
/// no rules of its own), so a summary is one row at any size. A completion after a waiver moves it from waived to
/// completed (the training was done after all).
/// </summary>
public sealed class SummaryProjection : IProjection
{
    public const string Name = "EnrolmentSummary";

    public async Task ApplyAsync(IDocumentOperations operations, IReadOnlyList<IEvent> events, CancellationToken cancellation)
    {
        foreach (var tenant in events.Where(e => e.Data is IEnrolmentEvent).GroupBy(e => e.TenantId))
        {
            var ops = operations.ForTenant(tenant.Key);
            var ids = tenant.Select(e => e.StreamId).Distinct().ToArray();
            var standings = (await ops.LoadManyAsync<EnrolmentStanding>(cancellation, ids)).ToDictionary(s => s.Id);

            var keys = standings.Values.SelectMany(s => new[] { EnrolmentSummary.ForAssignment(s.AssignmentId), EnrolmentSummary.ForUser(s.UserId) })
                .Concat(tenant.Select(e => e.Data).OfType<EnrolmentAssigned>().SelectMany(a => new[] { EnrolmentSummary.ForAssignment(a.AssignmentId), EnrolmentSummary.ForUser(a.UserId) }))
                .Distinct().ToArray();
            var summaries = (await ops.LoadManyAsync<EnrolmentSummary>(cancellation, keys)).ToDictionary(s => s.Id);
            EnrolmentSummary SummaryOf(string key) => summaries.TryGetValue(key, out var s) ? s : summaries[key] = new EnrolmentSummary { Id = key };

            var changed = new HashSet<Guid>();
            foreach (var e in tenant)
            {
                var data = (IEnrolmentEvent)e.Data;
                if (!standings.TryGetValue(e.StreamId, out var standing))
                {
                    if (data is not EnrolmentAssigned a) continue; // a stream always starts with its assignment
                    standing = standings[e.StreamId] = new EnrolmentStanding { Id = e.StreamId, AssignmentId = a.AssignmentId, UserId = a.UserId, Status = EnrolmentStatus.Unassigned };
                }
                var status = EnrolmentEvents.StatusAfter(data, standing.Status);
                var kind = data switch
                {
                    EnrolmentCompleted c => c.Late ? CompletionKind.Late : CompletionKind.OnTime,
                    EnrolmentWaived => CompletionKind.Waived,
                    _ => status == EnrolmentStatus.Complete ? standing.Kind : null,
                };
                if ((status, kind) == (standing.Status, standing.Kind)) continue;
                foreach (var summary in new[] { SummaryOf(EnrolmentSummary.ForAssignment(standing.AssignmentId)), SummaryOf(EnrolmentSummary.ForUser(standing.UserId)) })
                {
                    if (standing.Status != EnrolmentStatus.Unassigned) summary.Count(standing.Status, standing.Kind, -1);
                    summary.Count(status, kind, +1);
                }
                (standing.Status, standing.Kind) = (status, kind);
                changed.Add(standing.Id);
            }
            if (changed.Count == 0) continue;
            ops.Store(changed.Select(id => standings[id]).ToArray());
            ops.Store(summaries.Values.ToArray());
        }
    }
}
