using Enrolment.Domain;
using JasperFx.Events;
using Marten;
using Marten.Events;
using Marten.Internal.Storage;
using Marten.Storage;
using NodaTime;
using Npgsql;
using NpgsqlTypes;

namespace Enrolment.Api.Infrastructure.Sql;

/// <summary>
/// Starts many enrolment streams by binary COPY on the session's connection, in its transaction: the rows Marten's own
/// append would write to mt_streams and mt_events, and the enrolment documents through Marten's bulk loader (insert
/// only). Knows Marten's event tables column by column; <c>RowParityTests</c> compares what it writes with what an
/// ordinary append writes, so an upgrade of Marten that changes them fails a test rather than production.
///
/// The caller's session must have work of its own to save (a fan-out batch stores its batch marker): Marten commits
/// the transaction only when SaveChangesAsync has something to write.
///
/// Only for streams that must not exist yet: a stream or document created meanwhile by another transaction fails the
/// unique keys and the whole transaction rolls back.
/// </summary>
public static class NewStreams
{
    /// <summary>
    /// COPYs the streams (each its events in order, versions from 1) and their documents: <paramref name="states"/>[i] is
    /// stream i's state after its events, folded once by the caller (the one writer folds while it collects the
    /// integration events; folding again here cost a second pass over every event of the batch).
    /// </summary>
    public static async Task Copy(IDocumentSession session, IReadOnlyList<IReadOnlyList<IEnrolmentEvent>> streams, IReadOnlyList<EnrolmentState> states, Instant now, CancellationToken ct)
    {
        if (states.Count != streams.Count) throw new ArgumentException($"{states.Count} states for {streams.Count} streams.", nameof(states));
        var store = session.DocumentStore;
        var events = MartenInternals.Events(store);
        var schema = events.DatabaseSchemaName;
        var tenantId = session.TenantId;
        var streamType = events.AggregateAliasFor(typeof(EnrolmentState));
        var serializer = store.Options.Serializer();
        var timestamp = now.ToDateTimeOffset();

        // The session's own connection and transaction: what is copied here commits or rolls back with the rest of
        // the handler's work (its outbox envelopes included) when Wolverine saves the session.
        var connection = await SessionConnection.Open(session, ct);

        var sequence = await NextSequenceValues(connection, $"{schema}.{MartenInternals.EventSequence}", streams.Sum(s => s.Count), ct);
        var next = 0;

        await using (var copy = await connection.BeginBinaryImportAsync(
            $"copy {schema}.mt_streams (tenant_id, id, type, version, timestamp, created, is_archived) from stdin (format binary)", ct))
        {
            foreach (var stream in streams)
            {
                await copy.StartRowAsync(ct);
                await copy.WriteAsync(tenantId, NpgsqlDbType.Varchar, ct);
                await copy.WriteAsync(stream[0].EnrolmentId, NpgsqlDbType.Uuid, ct);
                await copy.WriteAsync(streamType, NpgsqlDbType.Varchar, ct);
                await copy.WriteAsync((long)stream.Count, NpgsqlDbType.Bigint, ct);
                await copy.WriteAsync(timestamp, NpgsqlDbType.TimestampTz, ct);
                await copy.WriteAsync(timestamp, NpgsqlDbType.TimestampTz, ct);
                await copy.WriteAsync(false, NpgsqlDbType.Boolean, ct);
            }
            await copy.CompleteAsync(ct);
        }

        // The event rows through the bulk append's one list of mt_events columns (metadata included).
        var metadata = ExistingStreams.EventMetadata.Of(session);
        await ExistingStreams.CopyEvents(connection, schema,
            streams.SelectMany(stream => stream.Select((e, v) =>
            {
                var mapping = events.EventMappingFor(e.GetType());
                return new ExistingStreams.EventRow(sequence[next++], Guid.CreateVersion7(), e.EnrolmentId, v + 1L,
                    serializer.ToJson(e), mapping.EventTypeName, timestamp, tenantId, mapping.DotNetTypeName, metadata);
            })), ct);

        // The documents the inline EnrolmentProjection would have written (the caller's fold is the projection's fold).
        var provider = (MartenDocumentProvider<EnrolmentState>)session.Database.Providers.StorageFor<EnrolmentState>();
        await provider.BulkLoader.LoadAsync(new Tenant(tenantId, session.Database), serializer, connection, states, ct);

        await SetDocumentVersions(session.DocumentStore, connection, tenantId, streams, ct);
    }

    /// <summary>
    /// Marten keeps the stream version in the document's mt_version (FetchForWriting and the bulk append's version guard
    /// read it back); its bulk loader writes 1. Streams of more than one event (completions recorded before the
    /// enrolment, a seeded history) are set right, on the caller's connection and transaction.
    /// </summary>
    /// <param name="table">Another table of the documents' layout (the seed command's temporary copy); default the enrolment table.</param>
    internal static async Task SetDocumentVersions(IDocumentStore store, NpgsqlConnection connection, string tenantId, IReadOnlyList<IReadOnlyList<IEnrolmentEvent>> streams, CancellationToken ct, string? table = null)
    {
        var longer = streams.Where(s => s.Count > 1).ToArray();
        if (longer.Length == 0) return;
        table ??= store.Options.FindOrResolveDocumentType(typeof(EnrolmentState)).TableName.QualifiedName;
        await using var command = new NpgsqlCommand(
            $"update {table} d set mt_version = v.version from unnest($2::uuid[], $3::bigint[]) as v(id, version) where d.tenant_id = $1 and d.id = v.id", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = tenantId });
        command.Parameters.Add(new NpgsqlParameter { Value = longer.Select(s => s[0].EnrolmentId).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = longer.Select(s => (long)s.Count).ToArray() });
        await command.ExecuteNonQueryAsync(ct);
    }

    internal static async Task<long[]> NextSequenceValues(NpgsqlConnection connection, string sequence, int count, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("select nextval($1::regclass) from generate_series(1, $2)", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = sequence });
        command.Parameters.Add(new NpgsqlParameter { Value = count });
        var values = new long[count];
        await using var reader = await command.ExecuteReaderAsync(ct);
        for (var i = 0; await reader.ReadAsync(ct); i++) values[i] = reader.GetInt64(0);
        return values;
    }
}
