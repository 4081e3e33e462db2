using Enrolment.Domain;
using JasperFx.Events;
using Marten;
using Marten.Events;
using Npgsql;
using NpgsqlTypes;

namespace Enrolment.Api.Infrastructure.Sql;

/// <summary>
/// Rebuilds the enrolment documents from their streams in place, while the service runs: documents are overwritten
/// batch by batch, never deleted first, so a reader always finds an enrolment (the old document until the new one is
/// written). Each batch is one transaction that also records how far the rebuild got, so a killed rebuild resumes
/// from its last batch. A document is only replaced by one folded from at least as many events (mt_version, which
/// Marten keeps equal to the stream version), so a write that commits while a batch runs is never undone.
///
/// Why not `projections rebuild` (Marten's daemon): it first deletes every document (readers meet 404s until it
/// ends, and after a failure), and it runs under a shard timeout that a large store reaches.
///
/// One instance per shard database (<paramref name="dataSource"/>): streams, documents and the position are that database's.
/// </summary>
public sealed class EnrolmentRebuild(IDocumentStore store, NpgsqlDataSource dataSource)
{
    private string Schema => store.Options.DatabaseSchemaName;
    private IReadOnlyDictionary<string, Func<Marten.ISerializer, System.Data.Common.DbDataReader, int, IEnrolmentEvent>> Readers => _readers ??= Features.Enrolments.StoredEnrolmentEvents.Readers(store);
    private IReadOnlyDictionary<string, Func<Marten.ISerializer, System.Data.Common.DbDataReader, int, IEnrolmentEvent>>? _readers;
    private string Progress => $"{Schema}.enrolment_rebuild_progress";
    private string Table => store.Options.FindOrResolveDocumentType(typeof(EnrolmentState)).TableName.QualifiedName;
    private string? _upsert;

    /// <summary>
    /// Inserts what is missing; replaces a document only by one folded from at least as many events, and only when the
    /// refold differs. The duplicated columns are ExistingStreams's list, so the two set-based writers stay in step.
    /// </summary>
    private string UpsertSql()
    {
        var columns = ExistingStreams.DocumentColumns;
        var names = string.Join(", ", columns.Select(c => c.Column));
        var arrays = string.Join(", ", columns.Select((c, i) => $"${i + 6}::{c.PgType}[]"));
        var values = string.Join(", ", columns.Select((_, i) => $"c{i}"));
        var sets = string.Join(", ", columns.Select(c => $"{c.Column} = excluded.{c.Column}"));
        var current = string.Join(", ", columns.Select(c => $"d.{c.Column}"));
        var refolded = string.Join(", ", columns.Select(c => $"excluded.{c.Column}"));
        return $"insert into {Table} as d (tenant_id, id, data, mt_last_modified, mt_dotnet_type, mt_version, {names}) " +
               $"select t, i, j::jsonb, now(), $5, v, {values} from unnest($1::varchar[], $2::uuid[], $3::text[], $4::bigint[], {arrays}) as x(t, i, j, v, {values}) " +
               $"on conflict (tenant_id, id) do update set data = excluded.data, mt_last_modified = excluded.mt_last_modified, mt_version = excluded.mt_version, {sets} " +
               $"where d.mt_version <= excluded.mt_version and (d.mt_version, d.data, {current}) is distinct from (excluded.mt_version, excluded.data, {refolded})";
    }

    public sealed record Position(string TenantId, Guid StreamId, long Streams, long Events, DateTimeOffset StartedAt);

    /// <summary>Where an interrupted rebuild stopped, or null when none is under way. <paramref name="restart"/> forgets it.</summary>
    public async Task<Position?> Resume(bool restart, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using (var create = new NpgsqlCommand(
            $"create table if not exists {Progress} (one boolean primary key default true check (one), tenant_id varchar not null, " +
            "stream_id uuid not null, streams bigint not null, events bigint not null, started_at timestamptz not null)", connection))
            await create.ExecuteNonQueryAsync(ct);
        if (restart)
        {
            await using var clear = new NpgsqlCommand($"delete from {Progress}", connection);
            await clear.ExecuteNonQueryAsync(ct);
            return null;
        }
        await using var read = new NpgsqlCommand($"select tenant_id, stream_id, streams, events, started_at from {Progress}", connection);
        await using var reader = await read.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct)
            ? new Position(reader.GetString(0), reader.GetGuid(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetFieldValue<DateTimeOffset>(4))
            : null;
    }

    /// <summary>How many enrolment streams and events there are, for progress and the time left.</summary>
    public async Task<(long Streams, long Events)> Totals(CancellationToken ct)
    {
        var streamType = MartenInternals.Events(store).AggregateAliasFor(typeof(EnrolmentState));
        await using var command = dataSource.CreateCommand(
            $"select (select count(*) from {Schema}.mt_streams where type = $1), (select count(*) from {Schema}.mt_events e join {Schema}.mt_streams s on s.tenant_id = e.tenant_id and s.id = e.stream_id where s.type = $1)");
        command.Parameters.Add(new NpgsqlParameter { Value = streamType });
        await using var reader = await command.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    /// <summary>A batch read and folded, not yet written: the position after it and its documents.</summary>
    public sealed record Batch(Position Next, IReadOnlyList<(string TenantId, EnrolmentState State, long Version)> Rows);

    /// <summary>
    /// Rebuilds the next <paramref name="batchSize"/> streams after <paramref name="after"/> (stream order: tenant, id) in
    /// one transaction, and records the new position in the same transaction. Null when there were none left.
    /// </summary>
    public async Task<Position?> NextBatch(Position after, int batchSize, CancellationToken ct)
    {
        var batch = await Read(after, batchSize, ct);
        if (batch is null) return null;
        await Write(batch, ct);
        return batch.Next;
    }

    /// <summary>
    /// Reads and folds the next <paramref name="batchSize"/> streams after <paramref name="after"/> (stream order: tenant,
    /// id), writing nothing; null when there are none left. Reading batch n+1 while batch n is written keeps both the
    /// service's cores and PostgreSQL busy (<see cref="Write"/> is what makes the batch count).
    /// </summary>
    public async Task<Batch?> Read(Position after, int batchSize, CancellationToken ct)
    {
        var streamType = MartenInternals.Events(store).AggregateAliasFor(typeof(EnrolmentState));
        var streams = new List<(string TenantId, Guid Id)>(batchSize);
        await using (var page = dataSource.CreateCommand(
            $"select tenant_id, id from {Schema}.mt_streams where type = $1 and (tenant_id, id) > ($2, $3) order by tenant_id, id limit $4"))
        {
            page.Parameters.Add(new NpgsqlParameter { Value = streamType });
            page.Parameters.Add(new NpgsqlParameter { Value = after.TenantId, NpgsqlDbType = NpgsqlDbType.Varchar });
            page.Parameters.Add(new NpgsqlParameter { Value = after.StreamId, NpgsqlDbType = NpgsqlDbType.Uuid });
            page.Parameters.Add(new NpgsqlParameter { Value = batchSize });
            await using var reader = await page.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) streams.Add((reader.GetString(0), reader.GetGuid(1)));
        }
        if (streams.Count == 0) return null;

        // The events, deserialised by Marten (its type mapping and upcasting), one query per tenant of each part of the
        // batch. Deserialising and folding is the rebuild's bottleneck (the service's process at one core, PostgreSQL
        // well below), so the batch is read in one part per core, at once.
        var parts = Math.Clamp(Environment.ProcessorCount, 1, 4);
        var size = (streams.Count + parts - 1) / parts;
        var read = await Task.WhenAll(streams.Chunk(size).Select(part => Task.Run(() => Fold(part, ct), ct)));
        var rows = read.SelectMany(r => r.Rows).ToList();
        var events = read.Sum(r => r.Events);
        var next = new Position(streams[^1].TenantId, streams[^1].Id, after.Streams + streams.Count, after.Events + events, after.StartedAt);
        return new Batch(next, rows);
    }

    private async Task<(List<(string TenantId, EnrolmentState State, long Version)> Rows, long Events)> Fold((string TenantId, Guid Id)[] streams, CancellationToken ct)
    {
        var rows = new List<(string TenantId, EnrolmentState State, long Version)>(streams.Length);
        long events = 0;
        // A lean read: the columns the fold needs, deserialised by stored name (StoredEnrolmentEvents: today's shapes and
        // the upcast earlier ones), not Marten's raw-event query, whose IEvent wrappers and metadata cost about 3x the
        // deserialising itself.
        var serializer = store.Options.Serializer();
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        foreach (var tenant in streams.GroupBy(s => s.TenantId))
        {
            await using var command = new NpgsqlCommand(
                $"select stream_id, version, type, data from {Schema}.mt_events where tenant_id = $1 and stream_id = any($2) order by stream_id, version", connection);
            command.Parameters.Add(new NpgsqlParameter { Value = tenant.Key, NpgsqlDbType = NpgsqlDbType.Varchar });
            command.Parameters.Add(new NpgsqlParameter { Value = tenant.Select(s => s.Id).ToArray() });
            await using var reader = await command.ExecuteReaderAsync(ct);
            var stream = Guid.Empty;
            EnrolmentState? state = null;
            long version = 0;
            void Flush()
            {
                if (state is not null) rows.Add((tenant.Key, state, version));
            }
            while (await reader.ReadAsync(ct))
            {
                var id = reader.GetGuid(0);
                if (id != stream)
                {
                    Flush();
                    (stream, state) = (id, null);
                }
                version = reader.GetInt64(1);
                events++;
                // A row of another type in an enrolment stream is not folded, as before (only enrolment events fold).
                if (Readers.TryGetValue(reader.GetString(2), out var read)) state = EnrolmentState.Fold(state, read(serializer, reader, 3));
            }
            Flush();
        }
        return (rows, events);
    }

    /// <summary>
    /// Writes a batch and its position in one transaction: inserts what is missing, replaces a document only by one
    /// folded from at least as many events, and leaves a document alone when the refold equals it (no new row version,
    /// no index entries, no WAL: a rebuild that changes nothing writes almost nothing). Returns the documents written.
    /// </summary>
    public async Task<long> Write(Batch batch, CancellationToken ct)
    {
        var rows = batch.Rows;
        var serializer = store.Options.Serializer();
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);

        var columns = ExistingStreams.DocumentColumns;
        long written;
        await using (var upsert = new NpgsqlCommand(_upsert ??= UpsertSql(), connection, tx))
        {
            upsert.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.TenantId).ToArray() });
            upsert.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.State.Id).ToArray() });
            upsert.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => serializer.ToJson(r.State)).ToArray() });
            upsert.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.Version).ToArray() });
            upsert.Parameters.Add(new NpgsqlParameter { Value = typeof(EnrolmentState).FullName });
            foreach (var column in columns)
                upsert.Parameters.Add(new NpgsqlParameter { Value = column.Values(rows.Select(r => r.State)) });
            written = await upsert.ExecuteNonQueryAsync(ct);
        }

        var next = batch.Next;
        await using (var save = new NpgsqlCommand(
            $"insert into {Progress} (tenant_id, stream_id, streams, events, started_at) values ($1, $2, $3, $4, $5) " +
            "on conflict (one) do update set tenant_id = excluded.tenant_id, stream_id = excluded.stream_id, streams = excluded.streams, events = excluded.events", connection, tx))
        {
            save.Parameters.Add(new NpgsqlParameter { Value = next.TenantId });
            save.Parameters.Add(new NpgsqlParameter { Value = next.StreamId });
            save.Parameters.Add(new NpgsqlParameter { Value = next.Streams });
            save.Parameters.Add(new NpgsqlParameter { Value = next.Events });
            save.Parameters.Add(new NpgsqlParameter { Value = next.StartedAt });
            await save.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
        return written;
    }

    /// <summary>The rebuild is complete: forget its position.</summary>
    public async Task Finish(CancellationToken ct)
    {
        await using var command = dataSource.CreateCommand($"delete from {Progress}");
        await command.ExecuteNonQueryAsync(ct);
    }
}
