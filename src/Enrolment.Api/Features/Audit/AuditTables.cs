using Enrolment.Api.Infrastructure.Sql;
using System.Text;
using Enrolment.Api.Features.Audit;
using Enrolment.Api.Infrastructure;
using Marten;
using Npgsql;
using NpgsqlTypes;

namespace Enrolment.Api.Features.Audit;

/// <summary>One event as the audit reads it: Marten's row (null when it is gone) beside its chain entry (null when missing).</summary>
public sealed record AuditRow(Guid StreamId, long Version, long Sequence, AuditHash.EventFields? Event, AuditChainEntry? Chain);

public sealed record AuditChainEntry(long Sequence, string EventType, string Timestamp, string DataSha256, string PreviousHash, string Hash);

/// <summary>
/// The SQL of the audit over Marten's event table (mt_events: tenant_id, stream_id, version, seq_id, type, timestamp,
/// data, and the metadata columns user_name, correlation_id, causation_id, headers, which this service's Marten
/// configuration always has) and the chain table
/// of <see cref="AuditChainSql"/>. Everything is read in (stream id, version) order, by key ranges, never all at once.
/// </summary>
public sealed class AuditTables(IDocumentStore store)
{
    // A tenant's events, chain and checkpoints are all in its shard: every query about one tenant runs there.
    private readonly string _schema = store.Options.Events.DatabaseSchemaName;

    private string EventColumns(string alias) =>
        $"{alias}.seq_id, {alias}.type, {_schema}.mt_audit_timestamp({alias}.timestamp), {alias}.user_name, {alias}.correlation_id, " +
        $"{alias}.causation_id, {alias}.headers::text, {alias}.data::text";

    private const string ChainColumns = "c.seq_id, c.event_type, c.event_timestamp, c.data_sha256, c.previous_hash, c.hash";

    /// <summary>
    /// A page of the tenant's events and chain entries after (stream, version), matched by key: a row missing on one
    /// side shows as null there. The first <paramref name="limit"/> keys of each side suffice for the first of both.
    /// </summary>
    public async Task<List<AuditRow>> Page(string tenantId, Guid afterStream, long afterVersion, int limit, CancellationToken ct)
    {
        await using var command = (await store.DataSourceOf(tenantId)).CreateCommand($"""
            select coalesce(e.stream_id, c.stream_id), coalesce(e.version, c.version), {EventColumns("e")}, {ChainColumns}
            from (select * from {_schema}.mt_events where tenant_id = $1 and (stream_id, version) > ($2, $3) and {AuditChainSql.Chained("mt_events")} order by stream_id, version limit $4) e
            full join (select * from {_schema}.{AuditChainSql.ChainTable} where tenant_id = $1 and (stream_id, version) > ($2, $3) order by stream_id, version limit $4) c
              on c.stream_id = e.stream_id and c.version = e.version
            order by 1, 2 limit $4
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = tenantId, NpgsqlDbType = NpgsqlDbType.Varchar });
        command.Parameters.Add(new NpgsqlParameter { Value = afterStream, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = afterVersion, NpgsqlDbType = NpgsqlDbType.Bigint });
        command.Parameters.Add(new NpgsqlParameter { Value = limit, NpgsqlDbType = NpgsqlDbType.Integer });
        var rows = new List<AuditRow>(limit);
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) rows.Add(Read(reader, tenantId, 0));
        return rows;
    }

    private static AuditRow Read(NpgsqlDataReader r, string tenantId, int offset)
    {
        var stream = r.GetGuid(offset);
        var version = r.GetInt64(offset + 1);
        string? S(int i) => r.IsDBNull(offset + i) ? null : r.GetString(offset + i);
        var e = r.IsDBNull(offset + 2) ? null
            : new AuditHash.EventFields(tenantId, stream, version, r.GetString(offset + 3), r.GetString(offset + 4), S(5), S(6), S(7), S(8), r.GetString(offset + 9));
        var c = r.IsDBNull(offset + 10) ? null
            : new AuditChainEntry(r.GetInt64(offset + 10), r.GetString(offset + 11), r.GetString(offset + 12), r.GetString(offset + 13), r.GetString(offset + 14), r.GetString(offset + 15));
        return new AuditRow(stream, version, e is not null ? r.GetInt64(offset + 2) : c!.Sequence, e, c);
    }

    /// <summary>
    /// The tenant's events with their chain entries, streamed row by row from one query (constant memory), in stream
    /// order: all of them, or the streams of one assignment (its own stream and its enrolments'), of one user, or both.
    /// </summary>
    public async IAsyncEnumerable<AuditRow> Export(string tenantId, Guid? assignmentId, string? userId, string enrolmentTable,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        var where = new StringBuilder($"e.tenant_id = $1 and {AuditChainSql.Chained("e")}");
        await using var command = (await store.DataSourceOf(tenantId)).CreateCommand();
        command.Parameters.Add(new NpgsqlParameter { Value = tenantId, NpgsqlDbType = NpgsqlDbType.Varchar });
        if (assignmentId is not null || userId is not null)
        {
            var streams = new StringBuilder($"select d.id from {enrolmentTable} d where d.tenant_id = $1");
            if (assignmentId is { } a)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = a, NpgsqlDbType = NpgsqlDbType.Uuid });
                streams.Append(" and d.assignment_id = $").Append(command.Parameters.Count);
            }
            if (userId is { } u)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = u, NpgsqlDbType = NpgsqlDbType.Varchar });
                streams.Append(" and d.user_id = $").Append(command.Parameters.Count);
            }
            // The assignment's own stream (created, removed) belongs to its history; a user filter narrows to enrolments.
            if (assignmentId is not null && userId is null) streams.Append(" union all select $2");
            where.Append(" and e.stream_id in (").Append(streams).Append(')');
        }
        command.CommandText = $"""
            select e.stream_id, e.version, {EventColumns("e")}, {ChainColumns}
            from {_schema}.mt_events e
            left join {_schema}.{AuditChainSql.ChainTable} c on c.tenant_id = e.tenant_id and c.stream_id = e.stream_id and c.version = e.version
            where {where} order by e.stream_id, e.version
            """;
        command.CommandTimeout = 0; // a whole tenant streams for as long as the client reads
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) yield return Read(reader, tenantId, 0);
    }

    /// <summary>Each stream's head (last version with sequence at or below the high-water mark) from the chain, in stream order, streamed.</summary>
    public async IAsyncEnumerable<(Guid Stream, long Version, long Sequence, string Hash)> ChainEntries(NpgsqlConnection connection, string tenantId,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            $"select stream_id, version, seq_id, hash from {_schema}.{AuditChainSql.ChainTable} where tenant_id = $1 order by stream_id, version", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = tenantId, NpgsqlDbType = NpgsqlDbType.Varchar });
        command.CommandTimeout = 0;
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) yield return (reader.GetGuid(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetString(3));
    }

    /// <summary>
    /// The tenant's chain entries with a sequence in (<paramref name="after"/>, <paramref name="upTo"/>], in sequence
    /// order, streamed: what a form-2 checkpoint digests. Read by the (tenant_id, seq_id) index, so a checkpoint reads the
    /// rows written since the previous one, not the tenant's history.
    /// </summary>
    public async IAsyncEnumerable<(Guid Stream, long Version, long Sequence, string Hash)> RangeEntries(NpgsqlConnection? connection, string tenantId,
        long after, long upTo, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        await using var own = connection is null ? await (await store.DataSourceOf(tenantId)).OpenConnectionAsync(ct) : null;
        await using var command = new NpgsqlCommand(
            $"select stream_id, version, seq_id, hash from {_schema}.{AuditChainSql.ChainTable} where tenant_id = $1 and seq_id > $2 and seq_id <= $3 order by seq_id",
            connection ?? own);
        command.Parameters.Add(new NpgsqlParameter { Value = tenantId, NpgsqlDbType = NpgsqlDbType.Varchar });
        command.Parameters.Add(new NpgsqlParameter { Value = after, NpgsqlDbType = NpgsqlDbType.Bigint });
        command.Parameters.Add(new NpgsqlParameter { Value = upTo, NpgsqlDbType = NpgsqlDbType.Bigint });
        command.CommandTimeout = 0;
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) yield return (reader.GetGuid(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetString(3));
    }

    /// <summary>
    /// The tenants that have chain entries, one index probe each (a loose scan of the (tenant_id, seq_id) index:
    /// PostgreSQL 15 has no skip scan), so the cost grows with the number of tenants, not of events.
    /// </summary>
    /// <summary>The tenant's move epoch in its shard (<see cref="TenantFence.Epoch"/>), on this connection or the shard's.</summary>
    public async Task<int> Epoch(NpgsqlConnection? connection, string tenantId, CancellationToken ct)
    {
        await using var own = connection is null ? await (await store.DataSourceOf(tenantId)).OpenConnectionAsync(ct) : null;
        return await TenantFence.Epoch(connection ?? own!, tenantId, ct);
    }

    public async Task<List<string>> ChainedTenants(NpgsqlConnection connection, CancellationToken ct)
    {
        var table = $"{_schema}.{AuditChainSql.ChainTable}";
        await using var command = new NpgsqlCommand($"""
            with recursive t(id) as (
              select min(tenant_id) from {table}
              union all
              select (select min(tenant_id) from {table} where tenant_id > t.id) from t where t.id is not null)
            select id from t where id is not null
            """, connection);
        var tenants = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) tenants.Add(reader.GetString(0));
        return tenants;
    }

    /// <summary>One stream's chain entries by version.</summary>
    /// <summary>
    /// A stream's events as stored, by version: the data as PostgreSQL's text of the jsonb value (the bytes the chain
    /// hashes, in whatever shape the version that wrote them used) and the event's link in the chain (null before it is chained).
    /// </summary>
    public async Task<Dictionary<long, (string Data, string? Hash, string? PreviousHash)>> Stored(string tenantId, Guid streamId, CancellationToken ct)
    {
        await using var command = (await store.DataSourceOf(tenantId)).CreateCommand($"""
            select e.version, e.data::text, c.hash, c.previous_hash from {_schema}.mt_events e
            left join {_schema}.{AuditChainSql.ChainTable} c on c.tenant_id = e.tenant_id and c.stream_id = e.stream_id and c.version = e.version
            where e.tenant_id = $1 and e.stream_id = $2
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = tenantId, NpgsqlDbType = NpgsqlDbType.Varchar });
        command.Parameters.Add(new NpgsqlParameter { Value = streamId, NpgsqlDbType = NpgsqlDbType.Uuid });
        var stored = new Dictionary<long, (string, string?, string?)>();
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
            stored[reader.GetInt64(0)] = (reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3));
        return stored;
    }

    /// <summary>
    /// Tenants that have events, chain entries or checkpoints in any shard: a tenant whose every row was deleted is still
    /// checked.
    /// </summary>
    public async Task<List<string>> Tenants(string checkpointTable, CancellationToken ct)
    {
        var tenants = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var shard in await store.Shards())
        {
            await using var command = TenantPool.DataSourceOf(shard).CreateCommand(
                $"select tenant_id from {_schema}.mt_streams union select tenant_id from {_schema}.{AuditChainSql.ChainTable} union select tenant_id from {checkpointTable}");
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) tenants.Add(reader.GetString(0));
        }
        return tenants.ToList();
    }

    /// <summary>Back-fills the chain of up to <paramref name="limit"/> streams after the key that have unchained events; returns the last key seen and the events chained.</summary>
    public async Task<(string Tenant, Guid Stream, int Streams, int Events)> Backfill(NpgsqlDataSource shard, string afterTenant, Guid afterStream, int limit, CancellationToken ct)
    {
        await using var command = shard.CreateCommand($"""
            with s as (
              select tenant_id, id, version from {_schema}.mt_streams where (tenant_id, id) > ($1, $2) order by tenant_id, id limit $3)
            select s.tenant_id, s.id, case when exists (select 1 from {_schema}.mt_events e where e.tenant_id = s.tenant_id and e.stream_id = s.id
                   and {AuditChainSql.Chained("e")} and not exists (select 1 from {_schema}.{AuditChainSql.ChainTable} c where c.tenant_id = e.tenant_id and c.stream_id = e.stream_id and c.version = e.version))
              then {_schema}.mt_audit_backfill_stream(s.tenant_id, s.id, 9223372036854775807) else 0 end
            from s order by s.tenant_id, s.id
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = afterTenant, NpgsqlDbType = NpgsqlDbType.Varchar });
        command.Parameters.Add(new NpgsqlParameter { Value = afterStream, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = limit, NpgsqlDbType = NpgsqlDbType.Integer });
        command.CommandTimeout = 0;
        var (tenant, stream, streams, events) = (afterTenant, afterStream, 0, 0);
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) { tenant = reader.GetString(0); stream = reader.GetGuid(1); streams++; events += reader.GetInt32(2); }
        return (tenant, stream, streams, events);
    }
}
