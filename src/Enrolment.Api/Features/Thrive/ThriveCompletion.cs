using Enrolment.Api.Features.Completions;
using Enrolment.Domain;
using NodaTime;
using NodaTime.Text;

namespace Enrolment.Api.Features.Thrive;

/// <summary>
/// A completion record as a Thrive client reads it: our <see cref="CompletionResult"/> with its completionId as
/// <c>id</c> and the instant it was recorded as <c>createdAt</c>.
/// </summary>
public sealed record ThriveCompletion(string Id, string UserId, string ContentId, Instant CompletedAt, double? Answer, Instant CreatedAt, List<CompletedEnrolment> Completed)
{
    public static ThriveCompletion From(CompletionResult r) => new(r.CompletionId, r.UserId, r.ContentId, r.CompletedAt, r.Answer, r.RecordedAt, r.Completed);

    /// <summary>
    /// The completion id of a Thrive completion sent without an Idempotency-Key: a name-based UUID of (user, content,
    /// completedAt to the nanosecond), so a repeat finds the first record. It leaves the tenant out: ids are per tenant
    /// anyway, and a client may compute it.
    /// </summary>
    public static string DerivedId(string userId, string contentId, Instant completedAt) =>
        Ids.NameBased(Namespace, $"{userId}\n{contentId}\n{InstantPattern.ExtendedIso.Format(completedAt)}").ToString();

    // Fixed for ever: changing it would make every repeat sent after an upgrade a new completion.
    private static readonly Guid Namespace = Guid.Parse("3a0e5d7c-9b1f-4c62-8e4d-7f2a91c3b605");
}
