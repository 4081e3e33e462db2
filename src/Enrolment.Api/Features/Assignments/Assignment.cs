using Enrolment.Domain;
using JasperFx.Events;
using Marten.Events.Aggregation;
using System.Text.Json.Serialization;
using NodaTime;

namespace Enrolment.Api.Features.Assignments;

/// <summary>The assignment read model, projected inline from its stream; also the shape the API returns.</summary>
public sealed class Assignment
{
    public Guid Id { get; set; }
    public string AudienceId { get; set; } = "";
    public string PrimaryContentId { get; set; } = "";
    public Instant AvailableDate { get; set; }
    public Period? CompletionPeriod { get; set; }
    public Instant? DueDate { get; set; }
    public Period? Recurrence { get; set; }
    public string TimeZone { get; set; } = Schedule.DefaultTimeZone;
    public AssignmentStatus Status { get; set; } = AssignmentStatus.Active;
    public Instant CreatedAt { get; set; }
    public Instant? RemovedAt { get; set; }

    public Schedule ToSchedule() => new(AvailableDate, CompletionPeriod, DueDate, Recurrence, TimeZone);
    [JsonIgnore]
    public bool IsActive => Status == AssignmentStatus.Active;
}

/// <summary>In JSON (bodies and stored documents) camelCase: "active", or "removed" once DELETE /assignments/{id} ran.</summary>
public enum AssignmentStatus { Active, Removed }

public sealed partial class AssignmentProjection : SingleStreamProjection<Assignment, Guid>
{
    public AssignmentProjection()
    {
        // Evolve alone tells Marten nothing about the events, so it would apply this projection to every stream in a
        // save, loading an Assignment for each enrolment (a wasted round trip per completion or batch).
        IncludeType<AssignmentCreated>();
        IncludeType<AssignmentRemoved>();
    }

    public override Assignment? Evolve(Assignment? snapshot, Guid id, IEvent e)
    {
        switch (e.Data)
        {
            case AssignmentCreated c:
                return new Assignment
                {
                    Id = c.AssignmentId, AudienceId = c.AudienceId, PrimaryContentId = c.PrimaryContentId,
                    AvailableDate = c.Schedule.AvailableDate, CompletionPeriod = c.Schedule.CompletionPeriod,
                    DueDate = c.Schedule.DueDate, Recurrence = c.Schedule.Recurrence, TimeZone = c.Schedule.TimeZone,
                    CreatedAt = c.At,
                };
            case AssignmentRemoved r when snapshot is not null:
                snapshot.Status = AssignmentStatus.Removed;
                snapshot.RemovedAt = r.At;
                return snapshot;
            default:
                return snapshot;
        }
    }
}
