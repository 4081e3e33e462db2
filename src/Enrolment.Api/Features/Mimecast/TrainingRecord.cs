using System.Text.Json.Serialization;
using Enrolment.Domain;
using JasperFx.Events;
using Marten.Events.Aggregation;
using NodaTime;

namespace Enrolment.Api.Features.Mimecast;

/// <summary>
/// One enrolment as the Mimecast "get training details" query needs it, projected inline from the enrolment stream.
/// The user id is duplicated into an indexed column so that a page of users is one query (user_id = any(...)).
/// The lifecycle facts (status, period, reminders in the period, last completion) are the domain's own
/// <see cref="EnrolmentState"/> fold, so onWatchlist follows exactly the rule the rest of the service uses;
/// the record adds what only this query needs: when the training was assigned, and the merit counters.
/// </summary>
public sealed class TrainingRecord
{
    /// <summary>The enrolment id.</summary>
    public Guid Id { get; set; }
    public string UserId { get; set; } = "";
    public EnrolmentState State { get; set; } = null!;

    /// <summary>When the training was (last) assigned to the user: enrolled, or reinstated after an archive.</summary>
    public Instant AssignedAt { get; set; }

    public int OnTimeCompletions { get; set; }
    public int LateCompletions { get; set; }

    /// <summary>The due date of the latest period this enrolment missed (went overdue, or was completed late).</summary>
    public Instant? LastMissAt { get; set; }

    /// <summary>When each on-time completion since <see cref="LastMissAt"/> happened (the latest <see cref="MaxRun"/>).</summary>
    public List<Instant> OnTimeSinceLastMiss { get; set; } = [];

    public const int MaxRun = 100;

    [JsonIgnore] public string ContentId => State.PrimaryContentId;
    [JsonIgnore] public bool IsArchived => State.Status == EnrolmentStatus.Archived;
    /// <summary>Mimecast's watched: completed in the current period.</summary>
    [JsonIgnore] public bool Watched => State.Status == EnrolmentStatus.Complete;
    [JsonIgnore] public bool OnWatchlist => State.OnWatchlist;
    [JsonIgnore] public bool NeedsEngagement => State.Status == EnrolmentStatus.Overdue || State.OnWatchlist;
}

public sealed partial class TrainingRecordProjection : SingleStreamProjection<TrainingRecord, Guid>
{
    public override TrainingRecord? Evolve(TrainingRecord? snapshot, Guid id, IEvent e) =>
        e.Data is IEnrolmentEvent data ? Fold(snapshot, data) : snapshot;

    public static TrainingRecord Fold(TrainingRecord? record, IEnrolmentEvent e)
    {
        var before = record?.State;
        record ??= new TrainingRecord { Id = e.EnrolmentId };
        record.State = EnrolmentState.Fold(before, e);
        switch (e)
        {
            case EnrolmentAssigned a:
                record.UserId = a.UserId;
                record.AssignedAt = a.At;
                break;
            case EnrolmentReinstated r:
                record.AssignedAt = r.At;
                break;
            case EnrolmentBecameOverdue o:
                Missed(record, o.DueDate);
                break;
            case EnrolmentCompleted { Late: true } c:
                record.LateCompletions++;
                Missed(record, before?.DueDate ?? c.CompletedAt);
                break;
            case EnrolmentCompleted c:
                record.OnTimeCompletions++;
                record.OnTimeSinceLastMiss.Add(c.CompletedAt);
                if (record.OnTimeSinceLastMiss.Count > TrainingRecord.MaxRun) record.OnTimeSinceLastMiss.RemoveAt(0);
                break;
        }
        return record;
    }

    private static void Missed(TrainingRecord record, Instant dueDate)
    {
        if (record.LastMissAt is null || dueDate > record.LastMissAt) record.LastMissAt = dueDate;
        record.OnTimeSinceLastMiss.Clear();
    }
}
