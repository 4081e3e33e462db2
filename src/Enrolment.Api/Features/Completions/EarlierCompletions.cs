using Enrolment.Domain;
using Marten;

namespace Enrolment.Api.Features.Completions;

/// <summary>
/// The completions already recorded for some users and contents, in the order they were recorded: what a new or
/// reinstated enrolment must be given (<see cref="EnrolmentRules.ApplyEarlierCompletions"/>). One indexed query a batch.
/// </summary>
public sealed class EarlierCompletions
{
    private readonly ILookup<(string UserId, string ContentId), Completion> _byUserAndContent;

    private EarlierCompletions(ILookup<(string, string), Completion> byUserAndContent) => _byUserAndContent = byUserAndContent;

    public static async Task<EarlierCompletions> For(IQuerySession session, IReadOnlyCollection<string> userIds, IReadOnlyCollection<string> contentIds, CancellationToken ct)
    {
        if (userIds.Count == 0 || contentIds.Count == 0) return new EarlierCompletions(Array.Empty<Completion>().ToLookup(_ => ("", "")));
        var users = userIds.ToArray();
        var contents = contentIds.ToArray();
        var records = await session.Query<CompletionRecord>()
            .Where(r => r.Result.UserId.IsOneOf(users) && r.Result.ContentId.IsOneOf(contents))
            .ToListAsync(ct);
        return new EarlierCompletions(records
            .OrderBy(r => r.Result.RecordedAt).ThenBy(r => r.Id, StringComparer.Ordinal)
            .ToLookup(r => (r.Result.UserId, r.Result.ContentId), r => r.ToCompletion()));
    }

    public IEnumerable<Completion> Of(string userId, string contentId) => _byUserAndContent[(userId, contentId)];
}
