using System.Diagnostics;
using Enrolment.Api.Features.Audit;
using Enrolment.Api.Features.Summaries;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Sql;
using Marten;
using Marten.Storage;
using Npgsql;

namespace Enrolment.Api.Features.Tenants;

/// <summary>What a move did, for the operator.</summary>
public sealed record MoveReport(string From, string To, int Epoch, long Events, long Streams, long Documents, long Deliveries, TimeSpan Fenced, TimeSpan Total);

/// <summary>
/// `tenants move &lt;tenantId&gt; --to &lt;shard&gt;` (PRODUCT.md, "Scale-out"; docs/scale-out.md). In order:
/// 1. `audit verify` of the tenant in its shard, before anything changes: a broken chain is not moved.
/// 2. The fence (<see cref="TenantFence"/>): the exclusive move lock waits for the writes already past the gate, then the
///    fence row refuses every later one with 503 and Retry-After. Reads go on.
/// 3. One transaction on the target: the tenant's partitions, its streams, its events in sequence order with the target's
///    own sequence numbers (the target's triggers write their audit chain and change-feed positions, as for any append),
///    its documents (not the summaries, which the target's daemon projects again from the copied events), its webhook
///    subscriptions and deliveries, and the map from old change-feed positions to new ones. Before it commits, the chain
///    the target computed must equal the source's row for row (same hashes, so the same events), and the counts must
///    match; otherwise it rolls back, the fence is lifted, and the tenant stays where it was.
/// 4. The switch: the master's assignment names the target (Marten's AddTenantToShardAsync). This node uses it at once;
///    the others when they next read the pool (Shards:RefreshInterval). Until then a write they send to the source meets
///    the fence and is retried; the retry goes to the target.
/// 5. A checkpoint in the target (form 3, the first of the new epoch, covering every copied row), and `audit verify` there.
/// 6. After two refresh intervals (so no node reads the source any more), the source's rows of the tenant are deleted.
///    The fence row stays: a node that missed the switch still cannot write there.
/// A move that stops half-way (a crash) leaves the tenant fenced in the source and the target's transaction rolled
/// back: run it again. Writes refused meanwhile answered 503; none was acknowledged and lost.
/// </summary>
public sealed class TenantMove(IDocumentStore store, AuditTables tables, AuditCheckpoints checkpoints, IConfiguration configuration, ILogger<TenantMove> logger)
{
    private const string Schema = "enrolment";

    public async Task<MoveReport> Run(string tenantId, string target, Action<string> progress, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        var source = await store.ShardOf(tenantId, ct) ?? throw new MoveRefused($"Tenant {tenantId} is in no shard. Create it with `tenants add {tenantId}`.");
        if (source == target) throw new MoveRefused($"Tenant {tenantId} is already in shard {target}.");
        var pool = await store.ListShards(ct);
        if (pool.All(s => s.DatabaseId != target))
            throw new MoveRefused($"There is no shard '{target}' in the pool ({string.Join(", ", pool.Select(s => s.DatabaseId))}). Register it first with `shards add {target} \"<connection string>\"`.");
        await store.Shards(); // loads every shard of the pool into this node's store
        var sourceDb = await store.Storage.FindOrCreateDatabase(source);
        var targetDb = await store.Storage.FindOrCreateDatabase(target);
        var sourceData = TenantPool.DataSourceOf(sourceDb);
        var targetData = TenantPool.DataSourceOf(targetDb);

        // 1. The source chain must verify before it is copied (it is the evidence the copy must reproduce).
        progress($"Verifying the audit chain of {tenantId} in shard {source}...");
        await checkpoints.Take(wait: true, ct);
        var before = await AuditVerifier.Tenant(tables, checkpoints, tenantId, 1000, ct);
        if (before.Broken is not null)
            throw new MoveRefused($"The audit chain of {tenantId} does not verify in shard {source}, so it is not moved: {before.Broken}");

        // 2. The fence.
        progress($"Fencing the writes of {tenantId} in shard {source} (they answer 503 until the move ends)...");
        var fencedAt = Stopwatch.GetTimestamp();
        await Fence(sourceData, tenantId, target, ct);
        try
        {
            // 3. The copy, verified inside its own transaction.
            progress($"Copying {tenantId} from shard {source} to shard {target}...");
            var copied = await Copy(sourceData, targetData, tenantId, source, ct);

            // 4. The switch.
            progress($"Switching {tenantId} to shard {target}...");
            await store.Advanced.AddTenantToShardAsync(tenantId, target, ct);
            var fenced = Stopwatch.GetElapsedTime(fencedAt);

            // 5. The new epoch's first checkpoint, and the chain verified where it now lives.
            await checkpoints.Take(wait: true, ct);
            var after = await AuditVerifier.Tenant(tables, checkpoints, tenantId, 1000, ct);
            // (The copy's chain was compared link for link before it committed; writes go on in the target from the switch.)
            if (after.Broken is not null)
                throw new InvalidOperationException($"Tenant {tenantId} was switched to shard {target}, but its audit chain there does not verify ({after.Broken}). Its rows in shard {source} are kept; investigate before removing them.");

            // 6. The source's rows, once no node reads them.
            var refresh = configuration.GetValue("Shards:RefreshInterval", TimeSpan.FromSeconds(5));
            progress($"Waiting {2 * refresh.TotalSeconds:0} s for every node to read the new assignment, then removing {tenantId}'s rows from shard {source}...");
            await Task.Delay(2 * refresh, ct);
            await RemoveFrom(sourceData, tenantId, ct);
            logger.LogInformation("Tenant {Tenant} moved from shard {Source} to shard {Target}: {Events} events, {Streams} streams, {Documents} documents; writes were refused for {Seconds:F1} s",
                tenantId, source, target, copied.Events, copied.Streams, copied.Documents, fenced.TotalSeconds);
            return new MoveReport(source, target, copied.Epoch, copied.Events, copied.Streams, copied.Documents, copied.Deliveries, fenced, Stopwatch.GetElapsedTime(started));
        }
        catch
        {
            // Not switched: the tenant stays in its shard and writes there again (the target's transaction rolled back).
            if (await store.ShardOf(tenantId, CancellationToken.None) == source) await Unfence(sourceData, tenantId);
            throw;
        }
    }

    /// <summary>Waits for the tenant's writes in flight (shared gate locks) to commit, then refuses every later one.</summary>
    private static async Task Fence(NpgsqlDataSource source, string tenantId, string target, CancellationToken ct)
    {
        await using var connection = await source.OpenConnectionAsync(ct);
        await using (var command = new NpgsqlCommand("select pg_advisory_lock($1, hashtext($2))", connection))
        {
            command.Parameters.AddWithValue(TenantFence.LockClass);
            command.Parameters.AddWithValue(tenantId);
            await command.ExecuteNonQueryAsync(ct);
        }
        try
        {
            await using var fence = new NpgsqlCommand(
                $"insert into {Schema}.{TenantFence.FenceTable} (tenant_id, moved_to, fenced_at) values ($1, $2, now()) on conflict (tenant_id) do update set moved_to = excluded.moved_to, fenced_at = excluded.fenced_at",
                connection);
            fence.Parameters.AddWithValue(tenantId);
            fence.Parameters.AddWithValue(target);
            await fence.ExecuteNonQueryAsync(ct);
        }
        finally
        {
            await using var unlock = new NpgsqlCommand("select pg_advisory_unlock($1, hashtext($2))", connection);
            unlock.Parameters.AddWithValue(TenantFence.LockClass);
            unlock.Parameters.AddWithValue(tenantId);
            await unlock.ExecuteNonQueryAsync(CancellationToken.None);
        }
    }

    private static async Task Unfence(NpgsqlDataSource source, string tenantId)
    {
        await using var command = source.CreateCommand($"delete from {Schema}.{TenantFence.FenceTable} where tenant_id = $1");
        command.Parameters.AddWithValue(tenantId);
        await command.ExecuteNonQueryAsync();
    }

    private sealed record Copied(int Epoch, long Events, long Streams, long Documents, long Deliveries);

    private async Task<Copied> Copy(NpgsqlDataSource sourceData, NpgsqlDataSource targetData, string tenantId, string source, CancellationToken ct)
    {
        await using var from = await sourceData.OpenConnectionAsync(ct);
        // One snapshot of the source for every table (the fence stops the tenant's writes; this also keeps the copy whole
        // against the summaries daemon and webhook attempts, which are not fenced).
        await using var read = await from.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct);
        await using var to = await targetData.OpenConnectionAsync(ct);
        await using var write = await to.BeginTransactionAsync(ct);
        var tenant = Literal(tenantId);

        if (await Scalar<long>(to, $"select count(*) from {Schema}.mt_streams where tenant_id = {tenant}", ct) > 0)
            throw new MoveRefused($"Shard {await ShardName(to)} already holds streams of tenant {tenantId} (an earlier move that did not finish, or a tenant of the same id): nothing was copied. Remove them, or move the tenant elsewhere.");
        // Moving back into a shard it left before: its old fence goes (in this transaction, so only if the copy commits).
        await Execute(to, $"delete from {Schema}.{TenantFence.FenceTable} where tenant_id = {tenant}", ct);

        // The tenant's LIST partition of every partitioned table of the target, as Marten creates them, and Marten's record of it.
        var partitioned = await PartitionedTables(to, ct);
        var suffix = Suffix(tenantId);
        foreach (var table in partitioned)
            await Execute(to, $"create table if not exists {Schema}.{Quote(table + "_" + suffix)} partition of {Schema}.{Quote(table)} for values in ({tenant})", ct);
        await Execute(to, $"insert into {Schema}.mt_tenant_partitions (partition_value, partition_suffix) values ({tenant}, {Literal(suffix)}) on conflict do nothing", ct);

        // Streams as they are.
        var streams = await CopyTable(from, to, "mt_streams", $"where tenant_id = {tenant}", "", except: [], ct);

        // Events: staged with their old sequence number and change-feed transaction, then appended in old sequence order
        // with the target's own sequence numbers (a CTE materialized in that order, read in order). The target's insert
        // triggers write the audit chain and the change-feed positions (transaction: this one).
        var eventColumns = (await Columns(to, "mt_events")).Where(c => c != "seq_id").ToList();
        var list = string.Join(", ", eventColumns.Select(Quote));
        await Execute(to, $"create temp table move_events on commit drop as select '0'::xid8 as old_tx, seq_id as old_seq, {list} from {Schema}.mt_events limit 0", ct);
        long events;
        await using (var output = await from.BeginRawBinaryCopyAsync(
            $"copy (select coalesce(p.tx_id, '1'::xid8), e.seq_id, {string.Join(", ", eventColumns.Select(c => "e." + Quote(c)))} from {Schema}.mt_events e left join {Schema}.change_feed_positions p on p.seq_id = e.seq_id where e.tenant_id = {tenant} order by e.seq_id) to stdout (format binary)", ct))
        await using (var input = await to.BeginRawBinaryCopyAsync($"copy move_events from stdin (format binary)", ct))
            await output.CopyToAsync(input, ct);
        events = await Scalar<long>(to, "select count(*) from move_events", ct);
        await Execute(to, $"""
            with ordered as materialized (select * from move_events order by old_seq)
            insert into {Schema}.mt_events (seq_id, {list}) select nextval('{Schema}.{MartenInternals.EventSequence}'), {list} from ordered
            """, ct);
        // The old sequence order must be the new one (the chain and the feed's translation rely on it).
        var disordered = await Scalar<long>(to, $"""
            select count(*) from (select e.seq_id, lag(e.seq_id) over (order by m.old_seq) as previous
              from move_events m join {Schema}.mt_events e on e.tenant_id = m.tenant_id and e.stream_id = m.stream_id and e.version = m.version) x
            where x.previous > x.seq_id
            """, ct);
        if (disordered > 0) throw new InvalidOperationException($"The copied events of {tenantId} did not keep their order ({disordered} out of order); the copy is rolled back.");

        // Change-feed continuity: this move's epoch, the old positions of the copied events, and (moved again) the old
        // positions of earlier epochs, re-pointed at the new sequence numbers.
        var sourceEpoch = await Scalar<int>(from, $"select coalesce(max(epoch), 0) from {Schema}.{TenantFence.MovesTable} where tenant_id = {tenant}", ct);
        var epoch = sourceEpoch + 1;
        await Execute(to, $"""
            create temp table move_seq on commit drop as
              select m.old_seq, e.seq_id as new_seq from move_events m join {Schema}.mt_events e on e.tenant_id = m.tenant_id and e.stream_id = m.stream_id and e.version = m.version;
            insert into {Schema}.{TenantFence.PositionsTable} (tenant_id, epoch, old_tx, old_seq, new_seq)
              select {tenant}, {sourceEpoch}, m.old_tx, m.old_seq, s.new_seq from move_events m join move_seq s using (old_seq);
            """, ct);
        await Execute(to, $"create temp table move_positions on commit drop as select * from {Schema}.{TenantFence.PositionsTable} limit 0", ct);
        await CopyRows(from, to, $"select * from {Schema}.{TenantFence.PositionsTable} where tenant_id = {tenant}", "move_positions", ct);
        await Execute(to, $"""
            insert into {Schema}.{TenantFence.PositionsTable} (tenant_id, epoch, old_tx, old_seq, new_seq)
              select p.tenant_id, p.epoch, p.old_tx, p.old_seq, s.new_seq from move_positions p join move_seq s on s.old_seq = p.new_seq;
            """, ct);
        await CopyRows(from, to, $"select * from {Schema}.{TenantFence.MovesTable} where tenant_id = {tenant}", $"{Schema}.{TenantFence.MovesTable}", ct);
        await Execute(to, $"insert into {Schema}.{TenantFence.MovesTable} (tenant_id, epoch, from_shard, copy_tx, moved_at, events) values ({tenant}, {epoch}, {Literal(source)}, pg_current_xact_id(), now(), {events})", ct);

        // Documents: every partitioned table but the summaries (async: the target's daemon projects them from the copied
        // events, which it has not seen), then the tenanted rows of the unpartitioned ones.
        var projected = new[] { typeof(EnrolmentSummary), typeof(EnrolmentStanding) }
            .Select(t => store.Options.FindOrResolveDocumentType(t).TableName.Name).ToHashSet();
        long documents = 0;
        foreach (var table in partitioned.Where(t => !projected.Contains(t)))
            documents += await CopyTable(from, to, table, $"where tenant_id = {tenant}", "", except: [], ct);
        documents += await CopyTable(from, to, store.Options.FindOrResolveDocumentType(typeof(Webhooks.WebhookSubscription)).TableName.Name, $"where tenant_id = {tenant}", "", except: [], ct);
        // Deliveries in their order; the target numbers them (its own seq).
        var deliveries = await CopyTable(from, to, "webhook_deliveries", $"where tenant_id = {tenant}", "order by seq", except: ["seq"], ct);

        // The evidence: the target's chain, computed by its own trigger from the copied events, is the source's.
        var chainSql = $"select count(*), coalesce(encode(sha256(convert_to(string_agg(stream_id::text || ':' || version || ':' || hash, E'\\n' order by stream_id, version), 'UTF8')), 'hex'), '') from {Schema}.audit_chain where tenant_id = {tenant}";
        var (sourceCount, sourceDigest) = await Pair(from, chainSql, ct);
        var (targetCount, targetDigest) = await Pair(to, chainSql, ct);
        if (sourceCount != targetCount || sourceDigest != targetDigest)
            throw new InvalidOperationException($"The audit chain of {tenantId} computed in the target ({targetCount} links, digest {targetDigest}) is not the source's ({sourceCount} links, digest {sourceDigest}); the copy is rolled back and the tenant stays in shard {source}.");
        var sourceEvents = await Scalar<long>(from, $"select count(*) from {Schema}.mt_events where tenant_id = {tenant}", ct);
        if (sourceEvents != events) throw new InvalidOperationException($"Copied {events} events of {tenantId}, but the source holds {sourceEvents}; rolled back.");

        await write.CommitAsync(ct);
        await read.CommitAsync(ct);
        return new Copied(epoch, events, streams, documents, deliveries);
    }

    /// <summary>Deletes the tenant's rows from its old shard (keeps the fence row). Partitions are dropped, as Marten drops a removed tenant's.</summary>
    private static async Task RemoveFrom(NpgsqlDataSource sourceData, string tenantId, CancellationToken ct)
    {
        await using var connection = await sourceData.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var tenant = Literal(tenantId);
        var suffix = Suffix(tenantId);
        foreach (var table in new[] { "webhook_deliveries", "mt_doc_webhooksubscription", TenantFence.PositionsTable, TenantFence.MovesTable, "audit_chain", "enrolment_locks", "mt_events", "mt_streams" })
            await Execute(connection, $"delete from {Schema}.{Quote(table)} where tenant_id = {tenant}", ct);
        foreach (var table in await PartitionedTables(connection, ct))
            await Execute(connection, $"drop table if exists {Schema}.{Quote(table + "_" + suffix)}", ct);
        await Execute(connection, $"delete from {Schema}.mt_tenant_partitions where partition_value = {tenant}", ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>Copies a table's rows of the tenant, every column the target has (less <paramref name="except"/>), in binary.</summary>
    private static async Task<long> CopyTable(NpgsqlConnection from, NpgsqlConnection to, string table, string where, string orderBy, string[] except, CancellationToken ct)
    {
        var columns = string.Join(", ", (await Columns(to, table)).Where(c => !except.Contains(c)).Select(Quote));
        await CopyRows(from, to, $"select {columns} from {Schema}.{Quote(table)} {where} {orderBy}", $"{Schema}.{Quote(table)} ({columns})", ct);
        return await Scalar<long>(from, $"select count(*) from {Schema}.{Quote(table)} {where}", ct);
    }

    private static async Task CopyRows(NpgsqlConnection from, NpgsqlConnection to, string query, string into, CancellationToken ct)
    {
        await using var output = await from.BeginRawBinaryCopyAsync($"copy ({query}) to stdout (format binary)", ct);
        await using var input = await to.BeginRawBinaryCopyAsync($"copy {into} from stdin (format binary)", ct);
        await output.CopyToAsync(input, ct);
    }

    /// <summary>The partitioned parent tables of the service's schema (each has one LIST partition per tenant).</summary>
    private static Task<List<string>> PartitionedTables(NpgsqlConnection connection, CancellationToken ct) =>
        Strings(connection, $"select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = '{Schema}' and c.relkind = 'p' order by 1", ct);

    private static async Task<List<string>> Columns(NpgsqlConnection connection, string table) =>
        await Strings(connection, $"select column_name from information_schema.columns where table_schema = '{Schema}' and table_name = {Literal(table)} order by ordinal_position", CancellationToken.None);

    private static async Task<List<string>> Strings(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync(ct);
        var values = new List<string>();
        while (await reader.ReadAsync(ct)) values.Add(reader.GetString(0));
        return values;
    }

    private static async Task<T> Scalar<T>(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)Convert.ChangeType((await command.ExecuteScalarAsync(ct))!, typeof(T), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task<(long, string)> Pair(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        return (reader.GetInt64(0), reader.GetString(1));
    }

    private static async Task Execute(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(ct);
    }

    private static async Task<string> ShardName(NpgsqlConnection connection) => $"{connection.Host}:{connection.Port}/{connection.Database}";

    /// <summary>Marten's partition suffix for a tenant id: lower case, anything but a–z, 0–9 and _ as _.</summary>
    private static string Suffix(string tenantId) => new(tenantId.ToLowerInvariant().Select(c => c is >= 'a' and <= 'z' or >= '0' and <= '9' or '_' ? c : '_').ToArray());

    private static string Literal(string value) => "'" + value.Replace("'", "''") + "'";

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"") + "\"";
}

/// <summary>A move that was not started, with the reason for the operator (nothing changed).</summary>
public sealed class MoveRefused(string message) : Exception(message);
