using Marten;
using Npgsql;
using NpgsqlTypes;
using Weasel.Core;
using Weasel.Postgresql;
using Weasel.Postgresql.Tables;

namespace Enrolment.Api.Infrastructure.Sql;

/// <summary>
/// One empty row per (tenant, kind, key) that a write has ever serialized on: a user, an audience or an assignment
/// (the enrolment area's EnrolmentWriter states who locks what). Two transactions that must not miss each other's
/// uncommitted work lock the same row first: the second waits for the first to commit, and its next statement (READ
/// COMMITTED takes a new snapshot per statement) sees what the first wrote. Row locks live in the tuple, not in
/// PostgreSQL's shared lock table, so a 500-user batch cannot exhaust max_locks_per_transaction as 500 advisory locks could.
/// </summary>
public static class WriteLockRows
{
    public const string TableName = "enrolment_locks";

    public const string User = "user";
    public const string Audience = "audience";
    public const string Assignment = "assignment";
    /// <summary>A SCIM user (the Scim area): its active flag and the group memberships that follow it.</summary>
    public const string ScimUser = "scim-user";
    /// <summary>A SCIM userName or group displayName (lowercased), unique in a tenant.</summary>
    public const string ScimUserName = "scim-user-name", ScimGroupName = "scim-group-name";

    public static Table Table()
    {
        var table = new Table(new PostgresqlObjectName("enrolment", TableName, SchemaUtils.IdentifierUsage.General));
        table.AddColumn("tenant_id", "text").AsPrimaryKey();
        table.AddColumn("kind", "text").AsPrimaryKey();
        table.AddColumn("key", "text").AsPrimaryKey();
        return table;
    }

    /// <summary>
    /// Opens the session's transaction (if not yet open) and locks these keys' rows until it ends, creating the missing
    /// ones, in key order (byte order), so two transactions over overlapping keys wait for each other instead of
    /// deadlocking. <paramref name="shared"/>: FOR SHARE (many holders, none exclusive), else FOR UPDATE. One round trip when
    /// every key is new, two otherwise.
    /// </summary>
    public static async Task Lock(IDocumentSession session, string kind, IReadOnlyCollection<string> keys, bool shared, CancellationToken ct)
    {
        if (keys.Count == 0) return;
        var connection = await SessionConnection.Open(session, ct);
        var sorted = keys.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        // 1. Create the missing rows, in key order. A row this transaction inserts is its own until it commits: another
        // writer's insert of that key waits for this commit, then skips it and locks the committed row (step 2). So a new
        // key needs no row lock, which halves the cost of a fan-out batch of new users (500 row locks fewer).
        var created = new HashSet<string>(StringComparer.Ordinal);
        await using (var insert = new NpgsqlCommand(
            $"insert into enrolment.{TableName} (tenant_id, kind, key) select $1, $2, k from unnest($3::text[]) as k order by k collate \"C\" on conflict do nothing returning key",
            connection))
        {
            AddParameters(insert, session.TenantId, kind, sorted);
            await using var reader = await insert.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) created.Add(reader.GetString(0));
        }
        if (created.Count == sorted.Length) return;

        // 2. Lock the rows that existed (or that another writer committed while step 1 waited for it), in key order. A new
        // statement, so a new snapshot: it sees those rows.
        var existing = sorted.Where(k => !created.Contains(k)).ToArray();
        await using var select = new NpgsqlCommand(
            $"select count(*) from (select key from enrolment.{TableName} where tenant_id = $1 and kind = $2 and key = any($3::text[]) " +
            $"order by key collate \"C\" for {(shared ? "share" : "update")}) locked", connection);
        AddParameters(select, session.TenantId, kind, existing);
        var locked = Convert.ToInt64(await select.ExecuteScalarAsync(ct));
        if (locked != existing.Length)
            throw new InvalidOperationException($"Locked {locked} of {existing.Length} {kind} rows of tenant {session.TenantId} in {TableName}; expected every one.");
    }

    private static void AddParameters(NpgsqlCommand command, string tenantId, string kind, string[] keys)
    {
        command.Parameters.Add(new NpgsqlParameter { Value = tenantId, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = kind, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = keys, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
    }

}
