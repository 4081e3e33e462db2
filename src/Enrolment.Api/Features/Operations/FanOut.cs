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

public static class FanOut
{
    public const int BatchSize = 500;

    /// <summary>Records the operation and queues its batches in the caller's transaction (Wolverine's outbox).</summary>
    public static async Task<FanOutOperation> Start(IDocumentSession session, IMessageBus bus, FanOutKind kind, string audienceId,
        Guid? assignmentId, IReadOnlyCollection<string> userIds, Instant now)
    {
        var chunks = userIds.Distinct(StringComparer.Ordinal).Chunk(BatchSize).ToArray();
        var operation = new FanOutOperation
        {
            Id = Guid.CreateVersion7(), Kind = kind, AudienceId = audienceId, AssignmentId = assignmentId,
            Users = chunks.Sum(c => c.Length), Batches = chunks.Length, CreatedAt = now,
        };
        session.Store(operation);
        var startedBy = Compliance.EventActors.Of(session)?.AsCredential();
        for (var i = 0; i < chunks.Length; i++)
            await bus.PublishAsync(new SyncEnrolments(operation.Id, i, audienceId, assignmentId, chunks[i], startedBy));
        return operation;
    }
}
