using Marten;
using Npgsql;
using NpgsqlTypes;

namespace Enrolment.Api.Infrastructure.Sql;

/// <summary>A position in the change feed: the writing transaction's id, then the event's sequence number.</summary>
public readonly record struct FeedPosition(ulong TransactionId, long Sequence) : IComparable<FeedPosition>
{
    public static readonly FeedPosition Start = new(0, 0);

    public int CompareTo(FeedPosition other) =>
        TransactionId != other.TransactionId ? TransactionId.CompareTo(other.TransactionId) : Sequence.CompareTo(other.Sequence);

    public static FeedPosition Max(FeedPosition a, FeedPosition b) => a.CompareTo(b) >= 0 ? a : b;

    /// <summary>After every change of the transactions below <paramref name="horizon"/> (a snapshot's xmin), before any other.</summary>
    public static FeedPosition BelowHorizon(ulong horizon) => new(Math.Max(horizon, 1) - 1, long.MaxValue);
}

/// <summary>One event row of the feed, as stored: where it is in the feed and which stream version it is.</summary>
public sealed record FeedRow(FeedPosition Position, Guid StreamId, long Version);

/// <summary>A page of the feed, and the horizon of the snapshot it was read in.</summary>
/// <param name="Horizon">
/// The snapshot's xmin: every transaction with a smaller id had finished when the page was read, and every
/// transaction that had not gets an id at or above it. So no row below the horizon can appear later.
/// </param>
public sealed record FeedRead(IReadOnlyList<FeedRow> Rows, ulong Horizon);

/// <summary>
/// The change feed's read: a tenant's events in the order (writing transaction id, sequence number), only those of
/// transactions below the reading snapshot's xmin.
/// </summary>
/// <remarks>
/// Why not <c>seq_id &gt; cursor</c>: Marten takes sequence numbers before commit, so a slow transaction can commit
/// seq 10 after seq 11 was read, and a reader past 11 would never see 10. Why not Marten's async daemon and its
/// high-water mark: in 9.58 it no longer skips a gap whose reserving transaction it can still see (pg_locks,
/// pg_stat_activity, the snapshot's xip list), but that evidence is heuristic across roles and sessions, and a gap
/// stale past its threshold with no visible reserver is skipped for good; the daemon must also run (and be elected)
/// for the feed to move. The snapshot rule needs none of that: a transaction below xmin has committed or aborted,
/// so its rows are visible now or never; one at or above it is read on a later poll, after the cursor. The price: an
/// open write transaction anywhere in the PostgreSQL cluster holds the feed back until it ends (the feed's lag).
/// </remarks>
public static class ChangeFeedQuery
{
    public static async Task<FeedRead> Read(IDocumentStore store, NpgsqlDataSource dataSource, string tenantId, FeedPosition after, int limit,
        IReadOnlyCollection<string> eventTypes, Guid? assignmentId, string? userId, CancellationToken ct)
    {
        var schema = store.Options.Events.DatabaseSchemaName;
        var views = store.Options.FindOrResolveDocumentType(typeof(Enrolment.Domain.EnrolmentState)).TableName.QualifiedName;
        var filters = "";
        if (assignmentId is not null) filters += " AND v.assignment_id = @assignment";
        if (userId is not null) filters += " AND v.user_id = @user";
        var viewJoin = filters.Length == 0 ? "" : $"JOIN {views} v ON v.tenant_id = e.tenant_id AND v.id = e.stream_id{filters}";

        // One statement, so the horizon and the rows come from the same snapshot (READ COMMITTED takes one per statement).
        var sql = $"""
            WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
            SELECT h.xmin::text, r.tx_id, r.seq_id, r.stream_id, r.version
            FROM horizon h LEFT JOIN LATERAL (
              SELECT p.tx_id::text AS tx_id, p.seq_id, e.stream_id, e.version
              FROM {schema}.change_feed_positions p
              JOIN {schema}.mt_events e ON e.seq_id = p.seq_id
              {viewJoin}
              WHERE p.tenant_id = @tenant
                AND (p.tx_id, p.seq_id) > (@tx::text::xid8, @seq)
                AND p.tx_id < h.xmin
                AND e.type = ANY(@types)
              ORDER BY p.tx_id, p.seq_id
              LIMIT @limit
            ) r ON true
            """;

        await using var command = dataSource.CreateCommand(sql);
        command.Parameters.AddWithValue("tenant", tenantId);
        command.Parameters.AddWithValue("tx", after.TransactionId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        command.Parameters.AddWithValue("seq", after.Sequence);
        command.Parameters.AddWithValue("types", NpgsqlDbType.Array | NpgsqlDbType.Text, eventTypes.ToArray());
        command.Parameters.AddWithValue("limit", limit);
        if (assignmentId is { } a) command.Parameters.AddWithValue("assignment", a);
        if (userId is not null) command.Parameters.AddWithValue("user", userId);

        var rows = new List<FeedRow>();
        ulong horizon = 0;
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            horizon = ulong.Parse(reader.GetString(0), System.Globalization.CultureInfo.InvariantCulture);
            if (reader.IsDBNull(1)) continue;
            rows.Add(new FeedRow(new FeedPosition(ulong.Parse(reader.GetString(1), System.Globalization.CultureInfo.InvariantCulture), reader.GetInt64(2)),
                reader.GetGuid(3), reader.GetInt64(4)));
        }
        return new FeedRead(rows, horizon);
    }

    /// <summary>
    /// The position just below the current horizon: every transaction under it has finished, so a reader starting there
    /// misses nothing committed later (it may see a few changes that committed just before, while an older transaction
    /// was still open).
    /// </summary>
    public static async Task<FeedPosition> Now(NpgsqlDataSource dataSource, CancellationToken ct)
    {
        await using var command = dataSource.CreateCommand("SELECT pg_snapshot_xmin(pg_current_snapshot())::text");
        var xmin = ulong.Parse((string)(await command.ExecuteScalarAsync(ct))!, System.Globalization.CultureInfo.InvariantCulture);
        return FeedPosition.BelowHorizon(xmin);
    }

    /// <summary>The tenant's move epoch in its shard: its cursors' (<see cref="TenantFence.Epoch"/>).</summary>
    public static async Task<int> Epoch(NpgsqlDataSource dataSource, string tenantId, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await TenantFence.Epoch(connection, tenantId, ct);
    }

    /// <summary>
    /// A position of an earlier epoch in this shard's order. The move copied the tenant's events in one transaction
    /// (copy_tx), in their old sequence order, and recorded each old position with its new sequence number. The reader
    /// has seen every change at or before its old position; the first one it has not seen (lowest old sequence among
    /// those after it) is where it continues, so it misses none and may see again a few that a slow transaction had
    /// committed out of sequence order. Every change written after the move sorts after copy_tx.
    /// </summary>
    public static async Task<FeedPosition> Translate(NpgsqlDataSource dataSource, string tenantId, int epoch, FeedPosition position, int currentEpoch, CancellationToken ct)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT m.copy_tx::text,
                   (SELECT p.new_seq FROM enrolment.{TenantFence.PositionsTable} p
                    WHERE p.tenant_id = $1 AND p.epoch = $2 AND (p.old_tx, p.old_seq) > ($3::text::xid8, $4)
                    ORDER BY p.old_seq LIMIT 1)
            FROM enrolment.{TenantFence.MovesTable} m WHERE m.tenant_id = $1 AND m.epoch = $5
            """);
        command.Parameters.AddWithValue(tenantId);
        command.Parameters.AddWithValue(epoch);
        command.Parameters.AddWithValue(position.TransactionId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        command.Parameters.AddWithValue(position.Sequence);
        command.Parameters.AddWithValue(currentEpoch);
        await using var reader = await command.ExecuteReaderAsync(ct);
        if (!await reader.ReadAsync(ct)) return FeedPosition.Start; // no record of the move here: the whole feed again
        var copyTx = ulong.Parse(reader.GetString(0), System.Globalization.CultureInfo.InvariantCulture);
        return reader.IsDBNull(1) ? new FeedPosition(copyTx, long.MaxValue) : new FeedPosition(copyTx, reader.GetInt64(1) - 1);
    }

    /// <summary>
    /// How long the feed's horizon has been held back: the age of the oldest write transaction still open in the
    /// cluster (its changes, and every later one's, wait for it). Zero when none; null when the database cannot say.
    /// </summary>
    public static async Task<double?> HorizonAge(NpgsqlDataSource dataSource, CancellationToken ct)
    {
        await using var command = dataSource.CreateCommand(
            "SELECT coalesce(extract(epoch FROM now() - min(xact_start)), 0)::float8 FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()");
        command.CommandTimeout = 2;
        return await command.ExecuteScalarAsync(ct) is double age ? age : null;
    }
}
