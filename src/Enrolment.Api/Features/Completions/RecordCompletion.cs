using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine;
using Wolverine.Http;

namespace Enrolment.Api.Features.Completions;

public sealed record RecordCompletionRequest(string? CompletionId, string? UserId, string? ContentId, string? CompletedAt, double? Answer = null);

public sealed record CompletedEnrolment(Guid EnrolmentId, Guid AssignmentId, string Status, bool Late);

public sealed record CompletionResult(string CompletionId, string UserId, string ContentId, Instant CompletedAt, double? Answer, Instant RecordedAt, List<CompletedEnrolment> Completed);

public static class RecordCompletionEndpoint
{
    [ProducesResponseType<CompletionResult>(StatusCodes.Status200OK)]
    [WolverinePost("/completions", OperationId = "recordCompletion"), Authorize(Policy = AuthPolicies.Write)]
    [Tags("Completions")]
    [EndpointSummary("Record that a user completed a content item; completes every open or overdue enrolment of that user whose primary content matches (and is recorded on a waived one). Idempotent on completionId.")]
    public static async Task<IResult> Post(RecordCompletionRequest? request, IDocumentSession session, IMessageBus bus, IClock clock, CancellationToken ct)
    {
        if (request is null) return Problems.Validation("body", "The body must be a JSON object.");
        var now = clock.GetCurrentInstant();
        Instant? completedAt = Json.TryParseInstant(request.CompletedAt, out var parsed) ? parsed : null;
        var errors = CompletionRecorder.Validate(request.CompletionId, request.UserId, request.ContentId, completedAt, request.Answer, now);
        if (errors.Count > 0) return Problems.Validation("The completion is not valid.", errors);

        var completion = new Completion(request.CompletionId!, request.ContentId!, completedAt!.Value, request.Answer);
        var (result, conflict) = await CompletionRecorder.Record(session, bus, request.UserId!, completion, now, ct);
        return conflict
            ? Problems.Conflict("completion-id-reused", $"completionId '{completion.CompletionId}' was already used for a different completion.")
            : Results.Ok(result);
    }
}
