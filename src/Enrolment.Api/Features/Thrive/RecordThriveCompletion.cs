using Enrolment.Api.Features.Completions;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine;
using Wolverine.Http;

namespace Enrolment.Api.Features.Thrive;

public sealed record ThriveCompletionRequest(string? UserId, string? ContentId, string? CompletedAt);

/// <summary>
/// Thrive's completion: no client id in the body, so the id is the <c>Idempotency-Key</c> header when sent, else
/// derived from (user, content, completedAt). Recorded by <see cref="CompletionRecorder"/>, like POST /completions:
/// a repeat answers the first record and changes nothing.
/// </summary>
public static class RecordThriveCompletionEndpoint
{
    public const string IdempotencyKeyHeader = "Idempotency-Key";

    [WolverinePost("/rest/v1/learning/completions", OperationId = "thriveRecordCompletion"), Authorize(Policy = AuthPolicies.Write)]
    [Tags(ThriveApi.Tag)]
    [EndpointSummary("Thrive: record that a user completed a content item; completes every open or overdue enrolment of that user whose primary content matches. The id is the Idempotency-Key header when sent, else derived from (userId, contentId, completedAt): a repeat answers the first record.")]
    [ProducesResponseType<ThriveCompletion>(StatusCodes.Status200OK, "application/json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status400BadRequest, "application/problem+json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status409Conflict, "application/problem+json")]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status422UnprocessableEntity, "application/problem+json")]
    public static async Task<IResult> Post(ThriveCompletionRequest? request, [FromHeader(Name = IdempotencyKeyHeader)] string? idempotencyKey,
        IDocumentSession session, IMessageBus bus, IClock clock, CancellationToken ct)
    {
        if (request is null) return Problems.Validation("body", "The body must be a JSON object.");
        var now = clock.GetCurrentInstant();
        Instant? completedAt = Json.TryParseInstant(request.CompletedAt, out var parsed) ? parsed : null;
        var id = idempotencyKey ?? (Ids.IsValidExternalId(request.UserId) && Ids.IsValidExternalId(request.ContentId) && completedAt is { } at
            ? ThriveCompletion.DerivedId(request.UserId!, request.ContentId!, at)
            : "");
        var errors = CompletionRecorder.Validate(id, request.UserId, request.ContentId, completedAt, null, now);
        // A derived id breaks no rule of its own (without one, the fields it is made of carry the errors); a key does.
        if (errors.Remove("completionId", out _) && idempotencyKey is not null) errors["idempotencyKey"] = [$"The {IdempotencyKeyHeader} header must be 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -"];
        if (errors.Count > 0) return Problems.Validation("The completion is not valid.", errors);

        var completion = new Completion(id, request.ContentId!, completedAt!.Value, null);
        var (result, conflict) = await CompletionRecorder.Record(session, bus, request.UserId!, completion, now, ct);
        return conflict
            ? Problems.Conflict("completion-id-reused", idempotencyKey is null
                ? $"Completion {id} (derived from userId, contentId and completedAt) was already recorded differently through POST /completions."
                : $"{IdempotencyKeyHeader} '{id}' was already used for a different completion.")
            : Results.Ok(ThriveCompletion.From(result!));
    }
}
