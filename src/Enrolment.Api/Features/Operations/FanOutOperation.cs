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
/// A change that reaches many enrolments (an audience change, an assignment created or removed), split into
/// durable batches. The caller polls GET /operations/{id} until every batch is done.
/// </summary>
public sealed class FanOutOperation
{
    public Guid Id { get; set; }
    public FanOutKind Kind { get; set; }
    public string AudienceId { get; set; } = "";
    public Guid? AssignmentId { get; set; }
    public int Users { get; set; }
    public int Batches { get; set; }
    public Instant CreatedAt { get; set; }
}

/// <summary>Written by the batch's own transaction, so "done" means its enrolment changes committed.</summary>
public sealed class FanOutBatchDone
{
    public string Id { get; set; } = "";
    public Guid OperationId { get; set; }
    public int Changed { get; set; }
    public Instant CompletedAt { get; set; }
}

/// <summary>What started a fan-out; in JSON (the operation, stored and answered) kebab-case: "assignment-created", ….</summary>
public enum FanOutKind
{
    [JsonStringEnumMemberName("assignment-created")] AssignmentCreated,
    [JsonStringEnumMemberName("assignment-removed")] AssignmentRemoved,
    [JsonStringEnumMemberName("audience-changed")] AudienceChanged,
}
