using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Marten;
using NodaTime;
using Npgsql;
using NpgsqlTypes;
using Weasel.Postgresql;
using Weasel.Postgresql.Tables;

namespace Enrolment.Api.Features.Webhooks;

/// <summary>One delivery: one integration event for one subscription, and every attempt made to deliver it.</summary>
public sealed record WebhookDelivery(
    Guid Id, Guid WebhookId, string EventType, Guid MessageId, Guid EnrolmentId, long StreamVersion, string Status,
    Instant CreatedAt, Instant? DeliveredAt, Instant? NextAttemptAt, IReadOnlyList<WebhookAttempt> Attempts);

/// <summary>One HTTP attempt: when, the receiver's status code or the error, and how long it took.</summary>
public sealed record WebhookAttempt(int Attempt, Instant At, int? StatusCode, string? Error, double DurationMs);

public sealed record WebhookDeliveryPage(IReadOnlyList<WebhookDelivery> Items, string? NextCursor);

/// <summary>A delivery the sender claimed: what it needs to make one attempt.</summary>
public sealed record ClaimedDelivery(Guid Id, Guid WebhookId, string TenantId, string EventType, string MessageType, string Body, int Attempts, Instant? FailingSince, string? TraceParent);

/// <summary>
/// The deliveries table (enrolment.webhook_deliveries, created and migrated with Marten's schema) and every statement that
/// reads or writes it. A delivery is pending until a 2xx; the sender takes, per subscription and enrolment, only the pending
/// delivery of the lowest stream version, which is what keeps deliveries in order per enrolment.
/// </summary>
/// <remarks>One instance per shard database (the table is in each): the sender walks the shards, an endpoint uses its session's.</remarks>
public sealed class WebhookDeliveries(NpgsqlDataSource dataSource)
{
    public const string Pending = "pending";
    public const string Delivered = "delivered";
    private const string TableName = "enrolment.webhook_deliveries";

    public static Table Table()
    {
        var table = new Table(new PostgresqlObjectName("enrolment", "webhook_deliveries", SchemaUtils.IdentifierUsage.General));
        table.AddColumn<Guid>("id").AsPrimaryKey();
        table.AddColumn("seq", "bigint").NotNull().BigAutoIncrement();
        table.AddColumn<Guid>("subscription_id").NotNull();
        table.AddColumn("tenant_id", "text").NotNull();
        table.AddColumn<Guid>("enrolment_id").NotNull();
        table.AddColumn<long>("stream_version").NotNull();
        table.AddColumn("event_type", "text").NotNull();
        table.AddColumn<Guid>("message_id").NotNull();
        table.AddColumn("message_type", "text").NotNull();
        // text, not jsonb: the body is signed, so it must come back byte for byte as it was recorded.
        table.AddColumn("body", "text").NotNull();
        table.AddColumn("created_at", "timestamptz").NotNull();
        table.AddColumn("status", "text").NotNull().DefaultValueByString(Pending);
        table.AddColumn<int>("attempts").NotNull().DefaultValue(0);
        table.AddColumn("next_attempt_at", "timestamptz");
        table.AddColumn("failing_since", "timestamptz");
        table.AddColumn("lease_until", "timestamptz");
        table.AddColumn("delivered_at", "timestamptz");
        table.AddColumn("attempt_log", "jsonb").NotNull().DefaultValueByExpression("'[]'::jsonb");
        table.AddColumn("trace_parent", "text");
        table.Indexes.Add(new IndexDefinition("ix_webhook_deliveries_due") { Columns = ["next_attempt_at"], Predicate = "status = 'pending'" });
        table.Indexes.Add(new IndexDefinition("ix_webhook_deliveries_order") { Columns = ["subscription_id", "enrolment_id", "stream_version"], Predicate = "status = 'pending'" });
        table.Indexes.Add(new IndexDefinition("ix_webhook_deliveries_list") { Columns = ["subscription_id", "seq"] });
        return table;
    }

    /// <summary>Stable per (subscription, event): a redelivered integration event records nothing new.</summary>
    public static Guid DeliveryId(Guid subscriptionId, Guid messageId) => NameBasedId($"webhook-delivery\n{subscriptionId:N}\n{messageId:N}");

    /// <summary>A UUID (version 8) from the SHA-256 of <paramref name="name"/>: the same name, the same id, on every node.</summary>
    public static Guid NameBasedId(string name)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(name));
        var bytes = hash.AsSpan(0, 16).ToArray();
        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x80);
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80);
        return new Guid(bytes, bigEndian: true);
    }

    /// <summary>Queues the insert in the handler's Marten session, so it commits with the handled message.</summary>
    public static void Record(IDocumentSession session, Guid subscriptionId, string tenantId, Guid enrolmentId, long streamVersion, string eventType,
        Guid messageId, string messageType, string body, Instant now, string traceParent) =>
        session.QueueSqlCommand(
            $"insert into {TableName} (id, subscription_id, tenant_id, enrolment_id, stream_version, event_type, message_id, message_type, body, created_at, next_attempt_at, trace_parent) " +
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?::timestamptz, ?::timestamptz, nullif(?, '')) on conflict (id) do nothing",
            DeliveryId(subscriptionId, messageId), subscriptionId, tenantId, enrolmentId, streamVersion, eventType, messageId, messageType, body, Text(now), Text(now), traceParent);

    /// <summary>
    /// Leases up to <paramref name="limit"/> due deliveries of the given (active) subscriptions, each the oldest pending one of
    /// its enrolment for its subscription. SKIP LOCKED and the lease let several nodes send without sending one twice at once;
    /// a node that dies mid-attempt leaves a lease that runs out, and the delivery is tried again.
    /// </summary>
    public async Task<List<ClaimedDelivery>> Claim(Guid[] subscriptions, int limit, Instant now, Duration lease, CancellationToken ct)
    {
        const string sql = $"""
            update {TableName} d set lease_until = @lease_until
            where d.id in (
              select c.id from {TableName} c
              where c.status = 'pending' and c.subscription_id = any(@subscriptions) and c.next_attempt_at <= @now
                and (c.lease_until is null or c.lease_until < @now)
                and not exists (select 1 from {TableName} p
                                where p.subscription_id = c.subscription_id and p.enrolment_id = c.enrolment_id
                                  and p.status = 'pending' and p.stream_version < c.stream_version)
              order by c.next_attempt_at, c.seq
              limit @limit
              for update skip locked)
            returning d.id, d.subscription_id, d.tenant_id, d.event_type, d.message_type, d.body, d.attempts, d.failing_since, d.trace_parent
            """;
        await using var command = dataSource.CreateCommand(sql);
        command.Parameters.AddWithValue("lease_until", now + lease);
        command.Parameters.AddWithValue("subscriptions", subscriptions);
        command.Parameters.AddWithValue("now", now);
        command.Parameters.AddWithValue("limit", limit);
        var claimed = new List<ClaimedDelivery>();
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
            claimed.Add(new ClaimedDelivery(reader.GetGuid(0), reader.GetGuid(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetString(5),
                reader.GetInt32(6), reader.IsDBNull(7) ? null : reader.GetFieldValue<Instant>(7), reader.IsDBNull(8) ? null : reader.GetString(8)));
        return claimed;
    }

    public Task Succeeded(Guid id, WebhookAttempt attempt, CancellationToken ct) =>
        Execute($"""
            update {TableName} set status = 'delivered', attempts = @attempt, delivered_at = @at, next_attempt_at = null, lease_until = null,
              failing_since = null, attempt_log = attempt_log || @entry
            where id = @id and status = 'pending'
            """, ct, ("id", id), ("attempt", attempt.Attempt), ("at", attempt.At), ("entry", Entry(attempt)));

    public Task Failed(Guid id, WebhookAttempt attempt, Instant failingSince, Instant nextAttemptAt, CancellationToken ct) =>
        Execute($"""
            update {TableName} set attempts = @attempt, next_attempt_at = @next, lease_until = null, failing_since = @since,
              attempt_log = attempt_log || @entry
            where id = @id and status = 'pending'
            """, ct, ("id", id), ("attempt", attempt.Attempt), ("next", nextAttemptAt), ("since", failingSince), ("entry", Entry(attempt)));

    /// <summary>After enabling a subscription: every pending delivery is due now, and its failure window starts again.</summary>
    public static void Resume(IDocumentSession session, Guid subscriptionId, Instant now) =>
        session.QueueSqlCommand($"update {TableName} set next_attempt_at = ?::timestamptz, failing_since = null, lease_until = null where subscription_id = ? and status = 'pending'",
            Text(now), subscriptionId);

    // Marten's queued commands send an Instant as text: pass it as ISO-8601 text and cast it in SQL.
    private static string Text(Instant instant) => NodaTime.Text.InstantPattern.ExtendedIso.Format(instant);

    /// <summary>Makes one delivery pending and due now (again); false when the subscription has no such delivery.</summary>
    public async Task<bool> Redeliver(Guid subscriptionId, Guid deliveryId, Instant now, CancellationToken ct) =>
        await Execute($"""
            update {TableName} set status = 'pending', next_attempt_at = @now, failing_since = null, lease_until = null, delivered_at = null
            where id = @id and subscription_id = @s
            """, ct, ("id", deliveryId), ("s", subscriptionId), ("now", now)) == 1;

    public static void Forget(IDocumentSession session, Guid subscriptionId) =>
        session.QueueSqlCommand($"delete from {TableName} where subscription_id = ?", subscriptionId);

    /// <summary>Gives a claimed delivery back untried (the service is stopping), so another node or the next start need not wait for its lease.</summary>
    public Task Release(Guid id, CancellationToken ct) =>
        Execute($"update {TableName} set lease_until = null where id = @id", ct, ("id", id));

    public async Task<WebhookDelivery?> Find(Guid subscriptionId, Guid deliveryId, CancellationToken ct) =>
        (await Read("id = @id and subscription_id = @s", ct, ("id", deliveryId), ("s", subscriptionId))).SingleOrDefault();

    /// <summary>The subscription's deliveries, newest first, <paramref name="limit"/> at a time from <paramref name="before"/> (a seq).</summary>
    public async Task<(List<WebhookDelivery> Items, long? Next)> Page(Guid subscriptionId, long? before, int limit, CancellationToken ct)
    {
        var rows = await ReadWithSeq("subscription_id = @s and (@before::bigint is null or seq < @before) order by seq desc limit @limit", ct,
            ("s", subscriptionId), ("before", (object?)before ?? DBNull.Value), ("limit", limit + 1));
        var next = rows.Count > limit ? rows[limit - 1].Seq : (long?)null;
        return (rows.Take(limit).Select(r => r.Delivery).ToList(), next);
    }

    private async Task<List<WebhookDelivery>> Read(string where, CancellationToken ct, params (string, object)[] parameters) =>
        (await ReadWithSeq(where, ct, parameters)).Select(r => r.Delivery).ToList();

    private async Task<List<(long Seq, WebhookDelivery Delivery)>> ReadWithSeq(string where, CancellationToken ct, params (string, object)[] parameters)
    {
        await using var command = dataSource.CreateCommand(
            $"select seq, id, subscription_id, event_type, message_id, enrolment_id, stream_version, status, created_at, delivered_at, next_attempt_at, attempt_log::text from {TableName} where {where}");
        foreach (var (name, value) in parameters) command.Parameters.AddWithValue(name, value);
        var rows = new List<(long, WebhookDelivery)>();
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var status = reader.GetString(7);
            rows.Add((reader.GetInt64(0), new WebhookDelivery(reader.GetGuid(1), reader.GetGuid(2), reader.GetString(3), reader.GetGuid(4), reader.GetGuid(5),
                reader.GetInt64(6), status, reader.GetFieldValue<Instant>(8),
                reader.IsDBNull(9) ? null : reader.GetFieldValue<Instant>(9),
                status == Pending && !reader.IsDBNull(10) ? reader.GetFieldValue<Instant>(10) : null,
                JsonSerializer.Deserialize<List<WebhookAttempt>>(reader.GetString(11), Infrastructure.Json.Options) ?? [])));
        }
        return rows;
    }

    private static NpgsqlParameter Entry(WebhookAttempt attempt) =>
        new() { NpgsqlDbType = NpgsqlDbType.Jsonb, Value = "[" + JsonSerializer.Serialize(attempt, Infrastructure.Json.Options) + "]" };

    private async Task<int> Execute(string sql, CancellationToken ct, params (string Name, object Value)[] parameters)
    {
        await using var command = dataSource.CreateCommand(sql);
        foreach (var (name, value) in parameters)
        {
            if (value is NpgsqlParameter p) { p.ParameterName = name; command.Parameters.Add(p); }
            else command.Parameters.AddWithValue(name, value);
        }
        return await command.ExecuteNonQueryAsync(ct);
    }
}
