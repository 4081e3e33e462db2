using Marten;
using Npgsql;
using NpgsqlTypes;
using Weasel.Core;
using Weasel.Postgresql;
using Weasel.Postgresql.Tables;

namespace Enrolment.Api.Infrastructure.MartenTables;

/// <summary>
/// One row per (tenant, user) that has ever been written for, locked FOR UPDATE by every transaction that may create,
/// reinstate or complete that user's enrolments (Features/Enrolments/EnrolmentWriter). The row holds no
/// data: it is the point the two sides of "a completion and the fan-out batch that enrols its user" meet, so the
/// second waits for the first to commit and then reads what it wrote. Row locks live in the tuple, not in
/// PostgreSQL's shared lock table, so a 500-user batch cannot exhaust max_locks_per_transaction as 500 advisory locks could.
/// </summary>
public static class UserLockRows
{
    public const string TableName = "enrolment_user_locks";

    public static Table Table()
    {
        var table = new Table(new PostgresqlObjectName("enrolment", TableName, SchemaUtils.IdentifierUsage.General));
        table.AddColumn("tenant_id", "text").AsPrimaryKey();
        table.AddColumn("user_id", "text").AsPrimaryKey();
        return table;
    }

    /// <summary>
    /// Opens the session's transaction (if not yet open) and locks these users' rows, creating the missing ones, in
    /// user-id order, so two transactions over overlapping users wait for each other instead of deadlocking. One round
    /// trip. Everything the session reads afterwards sees what earlier holders of these locks committed (READ COMMITTED
    /// takes a new snapshot per statement).
    /// </summary>
    public static async Task Lock(IDocumentSession session, IReadOnlyCollection<string> userIds, CancellationToken ct)
    {
        if (userIds.Count == 0) return;
        var connection = await SessionConnection.Open(session, ct);
        var users = userIds.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        await using var batch = new NpgsqlBatch(connection);
        // A row another transaction inserted and has not committed yet: this insert waits for it (then conflicts and skips).
        batch.BatchCommands.Add(Command(
            $"insert into enrolment.{TableName} (tenant_id, user_id) select $1, u from unnest($2::text[]) as u order by u collate \"C\" on conflict do nothing",
            session.TenantId, users));
        batch.BatchCommands.Add(Command(
            $"select user_id from enrolment.{TableName} where tenant_id = $1 and user_id = any($2::text[]) order by user_id collate \"C\" for update",
            session.TenantId, users));
        await using var reader = await batch.ExecuteReaderAsync(ct);
        var locked = 0;
        while (await reader.ReadAsync(ct)) locked++;
        if (locked != users.Length)
            throw new InvalidOperationException($"Locked {locked} of {users.Length} user rows of tenant {session.TenantId}; expected every one.");
    }

    private static NpgsqlBatchCommand Command(string sql, string tenantId, string[] users)
    {
        var command = new NpgsqlBatchCommand(sql);
        command.Parameters.Add(new NpgsqlParameter { Value = tenantId, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = users, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        return command;
    }
}
