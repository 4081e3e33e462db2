using Enrolment.Domain;
using JasperFx.Events;
using Marten;
using Marten.Events;
using NodaTime;
using Npgsql;
using NpgsqlTypes;
using Wolverine;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>
/// Starts many enrolment streams at once in the calling handler's transaction: the stream rows, their first events
/// and the inline projections' documents go to PostgreSQL by binary COPY, and the integration events through
/// Wolverine's outbox as usual, all committed together when the handler's session is saved. An audience fan-out
/// creates up to <see cref="Operations.FanOut.BatchSize"/> enrolments per transaction, which otherwise cost one append
/// and three upserts, each its own statement, per stream.
///
/// Only for streams that must not exist yet: a stream or document created meanwhile by another transaction fails the
/// unique keys, the whole batch rolls back, and the message is retried (and then finds the stream).
/// </summary>
public static class NewEnrolmentStreams
{
    public static async Task Start(IDocumentSession session, IReadOnlyList<EnrolmentAssigned> assigned, IMessageBus bus, Instant now, CancellationToken ct)
    {
        if (assigned.Count == 0) return;
        var store = session.DocumentStore;
        var events = (EventGraph)store.Options.Events;
        var schema = events.DatabaseSchemaName;
        var tenantId = session.TenantId;
        var streamType = events.AggregateAliasFor(typeof(EnrolmentState));
        var mapping = events.EventMappingFor(typeof(EnrolmentAssigned));
        var serializer = store.Options.Serializer();
        var timestamp = now.ToDateTimeOffset();

        // The session's own connection and transaction: what is copied here commits or rolls back with the rest of
        // the handler's work (its outbox envelopes included) when Wolverine saves the session.
        await session.BeginTransactionAsync(ct);
        var connection = session.Connection ?? throw new InvalidOperationException("The session has no connection after BeginTransactionAsync.");

        var sequence = await NextSequenceValues(connection, $"{schema}.mt_events_sequence", assigned.Count, ct);
        var streams = new List<StreamAction>(assigned.Count);
        for (var i = 0; i < assigned.Count; i++)
        {
            var stream = StreamAction.Start(events, assigned[i].EnrolmentId, assigned[i]);
            var e = stream.Events[0];
            e.Id = Guid.CreateVersion7();
            e.Version = 1;
            e.Sequence = sequence[i];
            e.Timestamp = timestamp;
            e.TenantId = tenantId;
            e.StreamId = stream.Id;
            streams.Add(stream);
        }

        await using (var copy = await connection.BeginBinaryImportAsync(
            $"copy {schema}.mt_streams (tenant_id, id, type, version, timestamp, created, is_archived) from stdin (format binary)", ct))
        {
            foreach (var stream in streams)
            {
                await copy.StartRowAsync(ct);
                await copy.WriteAsync(tenantId, NpgsqlDbType.Varchar, ct);
                await copy.WriteAsync(stream.Id, NpgsqlDbType.Uuid, ct);
                await copy.WriteAsync(streamType, NpgsqlDbType.Varchar, ct);
                await copy.WriteAsync(1L, NpgsqlDbType.Bigint, ct);
                await copy.WriteAsync(timestamp, NpgsqlDbType.TimestampTz, ct);
                await copy.WriteAsync(timestamp, NpgsqlDbType.TimestampTz, ct);
                await copy.WriteAsync(false, NpgsqlDbType.Boolean, ct);
            }
            await copy.CompleteAsync(ct);
        }

        await using (var copy = await connection.BeginBinaryImportAsync(
            $"copy {schema}.mt_events (seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, is_archived) from stdin (format binary)", ct))
        {
            foreach (var e in streams.Select(s => s.Events[0]))
            {
                await copy.StartRowAsync(ct);
                await copy.WriteAsync(e.Sequence, NpgsqlDbType.Bigint, ct);
                await copy.WriteAsync(e.Id, NpgsqlDbType.Uuid, ct);
                await copy.WriteAsync(e.StreamId, NpgsqlDbType.Uuid, ct);
                await copy.WriteAsync(e.Version, NpgsqlDbType.Bigint, ct);
                await copy.WriteAsync(serializer.ToJson(e.Data), NpgsqlDbType.Jsonb, ct);
                await copy.WriteAsync(mapping.EventTypeName, NpgsqlDbType.Varchar, ct);
                await copy.WriteAsync(timestamp, NpgsqlDbType.TimestampTz, ct);
                await copy.WriteAsync(tenantId, NpgsqlDbType.Varchar, ct);
                await copy.WriteAsync(mapping.DotNetTypeName, NpgsqlDbType.Varchar, ct);
                await copy.WriteAsync(false, NpgsqlDbType.Boolean, ct);
            }
            await copy.CompleteAsync(ct);
        }

        await InlineDocuments.CopyNew(session, connection, InlineDocuments.Fold(store, streams), ct);

        foreach (var a in assigned)
            await bus.PublishAsync(EnrolmentChanges.Integration(tenantId, null, EnrolmentState.Fold(null, a), a, 1)!);
    }

    private static async Task<long[]> NextSequenceValues(NpgsqlConnection connection, string sequence, int count, CancellationToken ct)
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
