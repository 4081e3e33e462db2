using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using NodaTime;
using Wolverine.Http;

namespace Enrolment.Api.Features.Completions;

public sealed record RecordCompletionRequest(string? CompletionId, string? UserId, string? ContentId, string? CompletedAt, double? Answer);

public sealed record CompletedEnrolment(Guid EnrolmentId, Guid AssignmentId, string Status, bool Late);

public sealed record CompletionResult(string CompletionId, string UserId, string ContentId, Instant CompletedAt, double? Answer, Instant RecordedAt, List<CompletedEnrolment> Completed);

/// <summary>The completion as first recorded, so that a repeat of its completionId answers the same and changes nothing.</summary>
public sealed class CompletionRecord
{
    public string Id { get; set; } = "";
    public CompletionResult Result { get; set; } = null!;
}

public static class RecordCompletionEndpoint
{
    /// <summary>Completions may be stamped slightly ahead of our clock (client clock skew), not more.</summary>
    private static readonly Duration AllowedClockSkew = Duration.FromMinutes(5);

    [WolverinePost("/completions", OperationId = "recordCompletion"), Authorize(Policy = AuthPolicies.Write)]
    [Tags("Completions")]
    [EndpointSummary("Record that a user completed a content item; completes every open or overdue enrolment of that user whose primary content matches. Idempotent on completionId.")]
    public static async Task<IResult> Post(RecordCompletionRequest request, IDocumentSession session, IClock clock, CancellationToken ct)
    {
        var now = clock.GetCurrentInstant();
        var errors = new Dictionary<string, string[]>();
        if (!Ids.IsValidExternalId(request.CompletionId)) errors["completionId"] = ["Required: 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -"];
        if (!Ids.IsValidExternalId(request.UserId)) errors["userId"] = ["Required: 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -"];
        if (!Ids.IsValidExternalId(request.ContentId)) errors["contentId"] = ["Required: 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -"];
        Instant completedAt = default;
        if (!Json.TryParseInstant(request.CompletedAt, out completedAt)) errors["completedAt"] = ["Required: an ISO-8601 instant such as 2023-08-23T09:09:16.076Z."];
        else if (completedAt > now + AllowedClockSkew) errors["completedAt"] = ["Must not be in the future."];
        if (request.Answer is { } a && (double.IsNaN(a) || double.IsInfinity(a))) errors["answer"] = ["Must be a finite number."];
        if (errors.Count > 0) return Problems.Validation("The completion is not valid.", errors);

        var completion = new Completion(request.CompletionId!, request.ContentId!, completedAt, request.Answer);

        var previous = await session.LoadAsync<CompletionRecord>(completion.CompletionId, ct);
        if (previous is not null)
        {
            var p = previous.Result;
            return p.UserId == request.UserId && p.ContentId == completion.ContentId && p.CompletedAt == completedAt && p.Answer == completion.Answer
                ? Results.Ok(p)
                : Problems.Conflict("completion-id-reused", $"completionId '{completion.CompletionId}' was already used for a different completion.");
        }

        var candidates = await session.Query<EnrolmentView>()
            .Where(v => v.UserId == request.UserId && v.PrimaryContentId == completion.ContentId && (v.Status == "open" || v.Status == "overdue"))
            .ToListAsync(ct);

        var completed = new List<CompletedEnrolment>();
        foreach (var candidate in candidates)
        {
            var stream = await session.Events.FetchForWriting<EnrolmentState>(candidate.Id, ct);
            if (stream.Aggregate is null) continue;
            var decision = EnrolmentRules.Complete(stream.Aggregate, completion, now);
            if (decision.Events.Count == 0) continue;
            stream.AppendMany(decision.Events.Cast<object>().ToArray());
            var late = decision.Events.OfType<EnrolmentCompleted>().Any(e => e.Late);
            completed.Add(new CompletedEnrolment(candidate.Id, candidate.AssignmentId, "complete", late));
        }

        var result = new CompletionResult(completion.CompletionId, request.UserId!, completion.ContentId, completedAt, completion.Answer, now, completed);
        // Insert, not upsert: a concurrent request with the same completionId fails here and nothing of it commits.
        session.Insert(new CompletionRecord { Id = completion.CompletionId, Result = result });
        return Results.Ok(result);
    }
}
