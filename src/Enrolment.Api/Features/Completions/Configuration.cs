using Marten;

namespace Enrolment.Api.Features.Completions;

/// <summary>Completions: their records, indexed for the earlier completions a new enrolment is given and for Thrive's list.</summary>
public static class CompletionsConfiguration
{
    public static void AddCompletions(this WebApplicationBuilder builder) =>
        builder.Services.ConfigureMarten(IndexCompletionRecords);

    /// <summary>
    /// The filtered members as columns (completedAt as timestamptz) with composite indexes, so that a page is an index
    /// range scan by user, by content, or by completedAt alone. Duplicate() also gives each column an index of its own;
    /// the user and content ones are redundant with the composites but cost little on this insert-only table.
    /// </summary>
    private static void IndexCompletionRecords(StoreOptions opts) =>
        opts.Schema.For<CompletionRecord>()
            .Duplicate(x => x.Result.CompletedAt, pgType: "timestamptz", configure: idx => idx.Name = "ix_completionrecord_completed_at")
            .Duplicate(x => x.Result.UserId, configure: idx => idx.Name = "ix_completionrecord_user")
            .Duplicate(x => x.Result.ContentId, configure: idx => idx.Name = "ix_completionrecord_content")
            .Index([x => x.Result.UserId, x => x.Result.CompletedAt], idx => idx.Name = "ix_completionrecord_user_completed_at")
            .Index([x => x.Result.ContentId, x => x.Result.CompletedAt], idx => idx.Name = "ix_completionrecord_content_completed_at")
            .StartIndexesByTenantId();
}
