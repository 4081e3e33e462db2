using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine.Http;

namespace Enrolment.Api.Features.Operations;

/// <summary>How far a fan-out got: "running" until every batch committed, then "completed".</summary>
public enum OperationState { Running, Completed }

/// <summary>How far a fan-out got: "running" until every batch committed, then "completed".</summary>
/// <remarks>Kind is a plain string in the API ("assignment-created", …; <see cref="FanOutKind"/>): clients generated from the document cannot read kebab-case enum values.</remarks>
public sealed record OperationStatus(Guid Id, string Kind, OperationState Status, int Users, int Batches, int CompletedBatches, int EnrolmentsChanged, Instant CreatedAt, Instant? CompletedAt, string Href)
{
    public static OperationStatus Started(FanOutOperation op) =>
        new(op.Id, Json.Name(op.Kind), op.Batches == 0 ? OperationState.Completed : OperationState.Running, op.Users, op.Batches, 0, 0, op.CreatedAt, op.Batches == 0 ? op.CreatedAt : null, $"/operations/{op.Id}");
}

public static class GetOperationEndpoint
{
    [ProducesResponseType<OperationStatus>(StatusCodes.Status200OK), ProducesResponseType(StatusCodes.Status404NotFound)]
    [WolverineGet("/operations/{operationId}", OperationId = "getOperation"), Authorize(Policy = AuthPolicies.Read)]
    [Tags("Operations")]
    [EndpointSummary("Progress of a fan-out (audience change, assignment created or removed): poll until status is completed.")]
    public static async Task<IResult> Get(string operationId, IQuerySession session, CancellationToken ct)
    {
        if (!RouteIds.TryGuid(operationId, "operationId", out var id, out var problem)) return problem!;
        var op = await session.LoadAsync<FanOutOperation>(id, ct);
        if (op is null) return Problems.NotFound($"There is no operation {operationId}.");
        var done = await session.Query<FanOutBatchDone>().Where(b => b.OperationId == id).ToListAsync(ct);
        var complete = done.Count >= op.Batches;
        return Results.Ok(new OperationStatus(op.Id, Json.Name(op.Kind), complete ? OperationState.Completed : OperationState.Running, op.Users, op.Batches, done.Count,
            done.Sum(d => d.Changed), op.CreatedAt, complete ? (done.Count == 0 ? op.CreatedAt : done.Max(d => d.CompletedAt)) : null, $"/operations/{op.Id}"));
    }
}
