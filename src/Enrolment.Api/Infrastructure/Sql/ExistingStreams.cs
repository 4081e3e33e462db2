using Enrolment.Domain;
using JasperFx;
using Marten;
using Marten.Events;
using NodaTime;
using Npgsql;
using NpgsqlTypes;

namespace Enrolment.Api.Infrastructure.Sql;

/// <summary>
/// Appends to many EXISTING enrolment streams set-based, on the session's connection and in its transaction: one read
/// of the documents (state and stream version), one binary COPY of the events into mt_events, one UPDATE of mt_streams
/// guarded by the versions read and one UPDATE of the documents, instead of a quick-append call and a document upsert
/// per stream. Writes the rows Marten's own append and inline projection would (<c>RowParityTests</c> compares them
/// column by column).
///
/// Optimistic like Marten: a stream appended to since it was read (a completion, another node) collides with the
/// batch's events on pk_mt_events_stream_and_version (or fails the version guard), and the whole batch is abandoned
/// with a <see cref="ConcurrencyException"/>, so the caller can retry or redo those streams one by one through the
/// ordinary path. A writer that read the old version and commits after us collides the same way, so one transition is
/// never appended twice.
/// </summary>
public static class ExistingStreams
{
    /// <summary>One stream loaded for a bulk append: its document and the stream version it was folded at.</summary>
    public sealed record Loaded(EnrolmentState State, long Version);

    /// <summary>What to append to one stream: the events, the version they follow, and the state after them.</summary>
    public sealed record Append(Guid StreamId, long ExpectedVersion, IReadOnlyList<IEnrolmentEvent> Events, EnrolmentState After);

    /// <summary>
    /// The mt_events columns written, in COPY order, each with how it is filled: the one list of them, used by this
    /// bulk append and by <see cref="NewStreams"/>. Add a column here when Marten is configured to write one more.
    /// </summary>
    private static readonly (string Column, Func<EventRow, object?> Value, NpgsqlDbType Type)[] EventColumns =
    [
        ("seq_id", r => r.Sequence, NpgsqlDbType.Bigint),
        ("id", r => r.Id, NpgsqlDbType.Uuid),
        ("stream_id", r => r.StreamId, NpgsqlDbType.Uuid),
        ("version", r => r.Version, NpgsqlDbType.Bigint),
        ("data", r => r.Json, NpgsqlDbType.Jsonb),
        ("type", r => r.TypeName, NpgsqlDbType.Varchar),
        ("timestamp", r => r.Timestamp, NpgsqlDbType.TimestampTz),
        ("tenant_id", r => r.TenantId, NpgsqlDbType.Varchar),
        ("mt_dotnet_type", r => r.DotNetTypeName, NpgsqlDbType.Varchar),
        ("is_archived", _ => false, NpgsqlDbType.Boolean),
        // Who caused the events (the Compliance area's EventActors), as Marten's append takes them from the session.
        ("correlation_id", r => r.Metadata.CorrelationId, NpgsqlDbType.Varchar),
        ("causation_id", r => r.Metadata.CausationId, NpgsqlDbType.Varchar),
        ("headers", r => r.Metadata.Headers, NpgsqlDbType.Jsonb),
        ("user_name", r => r.Metadata.UserName, NpgsqlDbType.Varchar),
    ];

    /// <summary>The event metadata a session gives every event it appends (Marten's correlation, causation, headers, user name).</summary>
    internal sealed record EventMetadata(string? CorrelationId, string? CausationId, string? Headers, string? UserName)
    {
        public static EventMetadata Of(IDocumentSession session) => new(session.CorrelationId, session.CausationId,
            MartenInternals.Headers(session) is { Count: > 0 } headers ? session.DocumentStore.Options.Serializer().ToJson(headers) : null,
            session.LastModifiedBy);
    }

    internal sealed record EventRow(long Sequence, Guid Id, Guid StreamId, long Version, string Json, string TypeName,
        DateTimeOffset Timestamp, string TenantId, string DotNetTypeName, EventMetadata Metadata);

    /// <summary>COPYs event rows into mt_events on the connection (its transaction).</summary>
    internal static async Task CopyEvents(NpgsqlConnection connection, string schema, IEnumerable<EventRow> rows, CancellationToken ct)
    {
        await using var copy = await connection.BeginBinaryImportAsync(
            $"copy {schema}.mt_events ({string.Join(", ", EventColumns.Select(c => c.Column))}) from stdin (format binary)", ct);
        foreach (var row in rows)
        {
            await copy.StartRowAsync(ct);
            foreach (var column in EventColumns)
            {
                if (column.Value(row) is { } value) await copy.WriteAsync(value, column.Type, ct);
                else await copy.WriteNullAsync(ct);
            }
        }
        await copy.CompleteAsync(ct);
    }

    /// <summary>
    /// The documents' duplicated columns that a change of state can move, with their values from the state (as Marten's
    /// upsert writes them: EnumStorage.AsString, timestamptz). Also written by <see cref="EnrolmentRebuild"/>.
    /// </summary>
    internal static readonly (string Column, string PgType, Func<IEnumerable<EnrolmentState>, Array> Values)[] DocumentColumns =
    [
        ("assignment_id", "uuid", s => s.Select(x => x.AssignmentId).ToArray()),
        ("status", "varchar", s => s.Select(x => MartenInternals.DuplicatedEnum(x.Status)).ToArray()),
        ("user_id", "varchar", s => s.Select(x => x.UserId).ToArray()),
        ("next_transition_at_utc", "timestamptz", s => s.Select(x => x.NextTransitionAtUtc).ToArray()),
        ("updated_at", "timestamptz", s => s.Select(x => x.UpdatedAt.ToDateTimeOffset()).ToArray()),
    ];

    /// <summary>Opens the session's transaction and reads the enrolments' documents with their stream versions, in one query.</summary>
    public static async Task<Dictionary<Guid, Loaded>> Load(IDocumentSession session, IReadOnlyCollection<Guid> ids, CancellationToken ct)
    {
        var connection = await SessionConnection.Open(session, ct);
        var serializer = session.DocumentStore.Options.Serializer();
        await using var command = new NpgsqlCommand($"select id, data::text, mt_version from {DocumentTable(session)} where tenant_id = $1 and id = any($2)", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = session.TenantId, NpgsqlDbType = NpgsqlDbType.Varchar });
        command.Parameters.Add(new NpgsqlParameter { Value = ids.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid });
        var loaded = new Dictionary<Guid, Loaded>(ids.Count);
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
            loaded[reader.GetGuid(0)] = new Loaded(serializer.FromJson<EnrolmentState>(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(reader.GetString(1)))), reader.GetInt64(2));
        return loaded;
    }

    /// <summary>
    /// Appends each stream's events after its expected version, moves the stream versions and writes the documents, in
    /// the transaction <see cref="Load"/> opened. Throws <see cref="ConcurrencyException"/> when any stream moved meanwhile.
    /// </summary>
    public static async Task Write(IDocumentSession session, IReadOnlyList<Append> appends, Instant now, CancellationToken ct)
    {
        // In stream id order: two batches over the same streams take their locks in one order.
        appends = appends.Where(a => a.Events.Count > 0).OrderBy(a => a.StreamId).ToList();
        if (appends.Count == 0) return;
        var store = session.DocumentStore;
        var events = MartenInternals.Events(store);
        var schema = events.DatabaseSchemaName;
        var tenantId = session.TenantId;
        var serializer = store.Options.Serializer();
        var timestamp = now.ToDateTimeOffset();
        var connection = await SessionConnection.Open(session, ct);
        // Marten commits the transaction only when SaveChangesAsync has work of its own: without this, a batch whose
        // changes publish no integration event would be rolled back silently (and applied again at every poll).
        session.QueueSqlCommand("select 1");

        var sequence = await NewStreams.NextSequenceValues(connection, $"{schema}.{MartenInternals.EventSequence}", appends.Sum(a => a.Events.Count), ct);
        var next = 0;
        // A writer that appended to one of these streams after it was read owns that version: the COPY collides on
        // pk_mt_events_stream_and_version (waiting for it to commit first if need be), and the batch is a lost race.
        try
        {
            var metadata = EventMetadata.Of(session);
            await CopyEvents(connection, schema,
                appends.SelectMany(append => append.Events.Select((e, i) =>
                {
                    var mapping = events.EventMappingFor(e.GetType());
                    return new EventRow(sequence[next++], Guid.CreateVersion7(), append.StreamId, append.ExpectedVersion + i + 1,
                        serializer.ToJson(e), mapping.EventTypeName, timestamp, tenantId, mapping.DotNetTypeName, metadata);
                })), ct);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new ConcurrencyException($"An enrolment stream of tenant {tenantId} was appended to since this batch read it ({e.ConstraintName}); nothing of this batch was written.", e);
        }

        // Then the guard, in the order Marten's append takes them (events, then the stream row), so a concurrent append
        // and this batch wait for each other rather than deadlock: a stream that moved since it was read updates no row.
        await using (var guard = new NpgsqlCommand(
            $"update {schema}.mt_streams s set version = v.next, timestamp = now() from unnest($2::uuid[], $3::bigint[], $4::bigint[]) as v(id, expected, next) " +
            "where s.tenant_id = $1 and s.id = v.id and s.version = v.expected and not coalesce(s.is_archived, false)", connection))
        {
            guard.Parameters.Add(new NpgsqlParameter { Value = tenantId, NpgsqlDbType = NpgsqlDbType.Varchar });
            guard.Parameters.Add(new NpgsqlParameter { Value = appends.Select(a => a.StreamId).ToArray() });
            guard.Parameters.Add(new NpgsqlParameter { Value = appends.Select(a => a.ExpectedVersion).ToArray() });
            guard.Parameters.Add(new NpgsqlParameter { Value = appends.Select(a => a.ExpectedVersion + a.Events.Count).ToArray() });
            var updated = await guard.ExecuteNonQueryAsync(ct);
            if (updated != appends.Count)
                throw new ConcurrencyException(
                    $"{appends.Count - updated} of {appends.Count} enrolment streams of tenant {tenantId} changed since they were read; nothing of this batch was written.", null);
        }

        // The documents the inline projection would write: the fold's JSON, the stream version in mt_version.
        var sets = string.Join(", ", DocumentColumns.Select((c, i) => $"{c.Column} = v.c{i}"));
        var columns = string.Join(", ", DocumentColumns.Select((c, i) => $"${i + 5}::{c.PgType}[]"));
        var names = string.Join(", ", DocumentColumns.Select((_, i) => $"c{i}"));
        await using (var update = new NpgsqlCommand(
            $"update {DocumentTable(session)} d set data = v.data, mt_version = v.version, mt_last_modified = transaction_timestamp(), {sets} " +
            $"from unnest($2::uuid[], $3::jsonb[], $4::bigint[], {columns}) as v(id, data, version, {names}) where d.tenant_id = $1 and d.id = v.id", connection))
        {
            update.Parameters.Add(new NpgsqlParameter { Value = tenantId, NpgsqlDbType = NpgsqlDbType.Varchar });
            update.Parameters.Add(new NpgsqlParameter { Value = appends.Select(a => a.StreamId).ToArray() });
            update.Parameters.Add(new NpgsqlParameter { Value = appends.Select(a => serializer.ToJson(a.After)).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb });
            update.Parameters.Add(new NpgsqlParameter { Value = appends.Select(a => a.ExpectedVersion + a.Events.Count).ToArray() });
            foreach (var column in DocumentColumns)
                update.Parameters.Add(new NpgsqlParameter { Value = column.Values(appends.Select(a => a.After)) });
            var written = await update.ExecuteNonQueryAsync(ct);
            if (written != appends.Count)
                throw new ConcurrencyException($"{appends.Count - written} of {appends.Count} enrolment documents of tenant {tenantId} are missing; nothing of this batch was written.", null);
        }
    }

    private static string DocumentTable(IDocumentSession session) =>
        session.DocumentStore.Options.FindOrResolveDocumentType(typeof(EnrolmentState)).TableName.QualifiedName;
}
