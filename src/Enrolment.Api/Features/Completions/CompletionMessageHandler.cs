using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Enrolment.Api.Infrastructure;
using Marten;
using NodaTime;
using Wolverine;
using Wolverine.Marten.Publishing;
using Wolverine.Runtime;

namespace Enrolment.Api.Features.Completions;

/// <summary>A message that can never succeed (bad fields, unknown tenant): it goes to the dead-letter queue at once, untouched.</summary>
public sealed class InvalidMessageException(string message) : Exception(message);

/// <summary>
/// Completions arriving on the bus follow the same rules and idempotency as POST /completions. The tenant comes
/// from the tenant-id header or, failing that, the body; the session is opened for that tenant only.
/// </summary>
public static class RecordCompletionHandler
{
    public static async Task Handle(Contracts.RecordCompletion message, Envelope envelope, IDocumentStore store, OutboxedSessionFactory sessions, MessageContext context, IClock clock, ILogger<Contracts.RecordCompletion> logger, CancellationToken ct)
    {
        var tenantId = string.IsNullOrEmpty(envelope.TenantId) || envelope.TenantId == "*DEFAULT*" ? message.TenantId : envelope.TenantId;
        if (!Ids.IsValidTenantId(tenantId))
            throw new InvalidMessageException("The completion message names no valid tenant (tenant-id header or tenantId field).");
        if (message.TenantId is not null && message.TenantId != tenantId)
            throw new InvalidMessageException("The tenant-id header and the tenantId field disagree.");

        await using (var query = await store.QueryHome())
            if (await query.LoadAsync<TenantAccount>(tenantId!, ct) is null)
                throw new InvalidMessageException($"Tenant {tenantId} does not exist.");

        var now = clock.GetCurrentInstant();
        Instant? completedAt = message.CompletedAt is { } at ? Instant.FromDateTimeOffset(at) : null;
        var errors = CompletionRecorder.Validate(message.CompletionId, message.UserId, message.ContentId, completedAt, message.Answer, now);
        if (errors.Count > 0)
            throw new InvalidMessageException("The completion message is not valid: " + string.Join("; ", errors.Select(e => $"{e.Key}: {string.Join(" ", e.Value)}")));

        // A session of the message's tenant, enlisted in Wolverine's outbox: the integration events it causes are
        // committed with it.
        // Wolverine opens the session for the envelope's tenant: make that the resolved one (header or body).
        envelope.TenantId = tenantId;
        context.TenantId = tenantId;
        await using var session = sessions.OpenSession(context, tenantId!);
        Compliance.EventActors.Stamp(session, Compliance.EventActors.For(envelope), Compliance.EventActors.CorrelationId(envelope.CorrelationId), envelope.Id.ToString());
        var completion = new Completion(message.CompletionId!, message.ContentId!, completedAt!.Value, message.Answer);
        var (result, conflict) = await CompletionRecorder.Record(session, context, message.UserId!, completion, now, ct);
        if (conflict)
            throw new InvalidMessageException($"completionId '{completion.CompletionId}' was already used for a different completion.");
        await session.SaveChangesAsync(ct);
        logger.LogInformation("Completion {CompletionId} from the bus for tenant {TenantId} completed {Count} enrolments", completion.CompletionId, tenantId, result!.Completed.Count);
    }
}
