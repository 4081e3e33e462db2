using Marten;
using Npgsql;

namespace Enrolment.Api.Infrastructure.Sql;

/// <summary>
/// Reads Wolverine's durable inbox (<c>wolverine_incoming_envelopes</c> in Marten's schema, where
/// <c>IntegrateWithWolverine()</c> keeps it): whether a message sent to a durable local queue is still waiting to be
/// handled. Wolverine has no public lookup by envelope id; the columns used (id, status and its values 'Incoming' and
/// 'Scheduled') are pinned by the webhook test of that path (<c>A_later_version_waits_while_an_earlier_one_is_stuck…</c>), so an upgrade that changes them fails a test, not a delivery.
/// </summary>
/// With sharded tenancy Wolverine keeps one inbox per shard database and stores an envelope that carries a tenant id in
/// that tenant's shard, which is where this looks.
public sealed class WolverineInbox(IDocumentStore store)
{
    private readonly string table = $"{store.Options.DatabaseSchemaName}.wolverine_incoming_envelopes";

    /// <summary>
    /// True while the envelope is in the inbox and not yet handled: queued, being handled, waiting for a retry, or owned by
    /// a node that died and not yet recovered. False once it is handled, dead-lettered or was never there.
    /// </summary>
    public async Task<bool> IsWaiting(string tenantId, Guid envelopeId, CancellationToken ct)
    {
        await using var command = (await store.DataSourceOf(tenantId)).CreateCommand($"select exists (select 1 from {table} where id = $1 and status in ('Incoming', 'Scheduled'))");
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = envelopeId });
        return (bool)(await command.ExecuteScalarAsync(ct))!;
    }
}
