using Marten;
using Npgsql;
using Weasel.Core;
using Weasel.Postgresql;
using Weasel.Postgresql.Functions;
using Weasel.Postgresql.Tables;

namespace Enrolment.Api.Infrastructure.Sql;

/// <summary>
/// What makes `tenants move` lose no write (PRODUCT.md, "Scale-out"): every unit of work of a tenant calls
/// <c>enrolment.tenant_write_gate(tenant)</c> inside its transaction (<see cref="TenantWriteGate"/>). The gate takes a
/// shared transaction-scoped advisory lock on the tenant, and fails with SQLSTATE EN503 when a move holds it exclusively
/// or when the tenant's fence row says it has left this shard. The move takes the exclusive lock, which waits for every
/// write already past the gate to commit, then writes the fence row: from then on no write of the tenant commits in
/// this shard, so the copy it reads next misses none. The API answers EN503 with 503 and Retry-After; Wolverine retries
/// a message that met it (the NpgsqlException policy in Hosting), and the retry goes to the new shard.
/// The lock key is (<see cref="LockClass"/>, hashtext(tenant)): two tenants whose ids hash alike only share a brief wait.
/// </summary>
public static class TenantFence
{
    public const string FenceTable = "tenant_fences";
    public const string MovesTable = "tenant_moves";
    public const string PositionsTable = "tenant_move_positions";
    public const string GateFunction = "tenant_write_gate";
    /// <summary>The SQLSTATE of a write refused because its tenant is moving or has moved (class EN is this service's).</summary>
    public const string SqlState = "EN503";
    /// <summary>The first key of the move's advisory lock (ASCII "MOVE").</summary>
    public const int LockClass = 0x4D4F5645;

    public static void Configure(StoreOptions opts)
    {
        var schema = opts.DatabaseSchemaName;
        // A tenant that left this shard: its writes here are refused for good (a node that has not yet re-read the
        // assignment retries on the new shard). Deleted when the tenant moves back.
        var fences = new Table(new PostgresqlObjectName(schema, FenceTable, SchemaUtils.IdentifierUsage.General));
        fences.AddColumn("tenant_id", "text").AsPrimaryKey();
        fences.AddColumn("moved_to", "text").NotNull();
        fences.AddColumn("fenced_at", "timestamp with time zone").NotNull();
        opts.Storage.ExtendedSchemaObjects.Add(fences);

        // The moves a tenant made into this shard: epoch n is its n-th move; copy_tx the transaction that copied it, so
        // every copied change sorts after (copy_tx, 0) in the change feed's order.
        var moves = new Table(new PostgresqlObjectName(schema, MovesTable, SchemaUtils.IdentifierUsage.General));
        moves.AddColumn("tenant_id", "text").AsPrimaryKey();
        moves.AddColumn("epoch", "integer").AsPrimaryKey();
        moves.AddColumn("from_shard", "text").NotNull();
        moves.AddColumn("copy_tx", "xid8").NotNull();
        moves.AddColumn("moved_at", "timestamp with time zone").NotNull();
        moves.AddColumn("events", "bigint").NotNull();
        opts.Storage.ExtendedSchemaObjects.Add(moves);

        // Change-feed positions of earlier epochs, each mapped to the event's sequence number here, so a cursor issued
        // before a move carries on after it (ChangeCursor, ChangeFeedQuery.Translate).
        var positions = new Table(new PostgresqlObjectName(schema, PositionsTable, SchemaUtils.IdentifierUsage.General));
        positions.AddColumn("tenant_id", "text").AsPrimaryKey();
        positions.AddColumn("epoch", "integer").AsPrimaryKey();
        positions.AddColumn("old_tx", "xid8").AsPrimaryKey();
        positions.AddColumn("old_seq", "bigint").AsPrimaryKey();
        positions.AddColumn("new_seq", "bigint").NotNull();
        opts.Storage.ExtendedSchemaObjects.Add(positions);

        // Written as pg_get_functiondef renders it (Weasel compares line by line).
        opts.Storage.ExtendedSchemaObjects.Add(Function.ForSql($"""
            CREATE OR REPLACE FUNCTION {schema}.{GateFunction}(tenant text)
             RETURNS void
             LANGUAGE plpgsql
            AS $function$
            BEGIN
              IF NOT pg_try_advisory_xact_lock_shared({LockClass}, hashtext(tenant)) THEN
                RAISE EXCEPTION 'tenant % is being moved to another shard; retry in a second', tenant USING ERRCODE = '{SqlState}';
              END IF;
              IF EXISTS (SELECT 1 FROM {schema}.{FenceTable} f WHERE f.tenant_id = tenant) THEN
                RAISE EXCEPTION 'tenant % has moved to another shard; retry in a second', tenant USING ERRCODE = '{SqlState}';
              END IF;
            END;
            $function$;
            """));
    }

    /// <summary>How many times the tenant has moved into the shard it is in now (`tenants move`; 0: never moved): its
    /// change-feed cursors' epoch and its checkpoints'.</summary>
    public static async Task<int> Epoch(NpgsqlConnection connection, string tenantId, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand($"select coalesce(max(epoch), 0) from enrolment.{MovesTable} where tenant_id = $1", connection);
        command.Parameters.AddWithValue(tenantId);
        return Convert.ToInt32(await command.ExecuteScalarAsync(ct));
    }

    /// <summary>Whether an exception (Marten and Wolverine wrap the driver's) is the gate refusing a write.</summary>
    public static bool IsFenced(Exception exception)
    {
        for (Exception? e = exception; e is not null; e = e.InnerException)
        {
            if (e is PostgresException { SqlState: SqlState }) return true;
            if (e is AggregateException aggregate && aggregate.InnerExceptions.Any(IsFenced)) return true;
        }
        return false;
    }
}

/// <summary>
/// Adds the tenant's write gate (<see cref="TenantFence"/>) to every unit of work of a tenant that writes anything. It is
/// one more statement in the same batch (no extra round trip). Sessions of the home shard's registry documents (no tenant)
/// are not gated. Marten's async daemon does not run session listeners, so the summaries of a fenced tenant still
/// project.
/// </summary>
public sealed class TenantWriteGate : DocumentSessionListenerBase
{
    public override Task BeforeSaveChangesAsync(IDocumentSession session, CancellationToken token)
    {
        if (session.TenantId != JasperFx.StorageConstants.DefaultTenantId
            && (session.PendingChanges.Operations().Any() || session.PendingChanges.Streams().Any()))
            session.QueueSqlCommand($"select enrolment.{TenantFence.GateFunction}(?)", session.TenantId);
        return Task.CompletedTask;
    }
}
