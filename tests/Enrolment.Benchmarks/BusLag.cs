using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Npgsql;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace Enrolment.Benchmarks;

/// <summary>
/// Comparison 7's bus figure: from the due instant of a burst (N enrolments of the tenants labelled T, seeded due at
/// one instant) until the last of its N integration events (enrolment.overdue) is consumable by a bus consumer, and
/// the service's outbox holds none of them. Started before the due instant; polls once a second, four times a second
/// from 95% of N on.
///   postgresql: rows in Wolverine's queue table that a ListenToPostgresqlQueue consumer reads, inserted since the
///               start (checked by content once the count is there: overdue events of the label's tenants)
///   rabbitmq:   a durable queue of our own, bound to the service's exchange before the burst as a consumer's would
///               be; its ready-message count, then every message consumed and checked by content; deleted at the end
/// </summary>
public static class BusLag
{
    private static readonly TimeSpan PollEvery = TimeSpan.FromMilliseconds(250);

    public static async Task<int> Run(Options options)
    {
        var transport = options.Get("transport");
        var expected = options.Int("expected", 100_000);
        var timeout = TimeSpan.FromSeconds(options.Int("timeout", 1200));
        var label = options.Get("label");
        await using var dataSource = NpgsqlDataSource.Create(options.Get("connection"));
        IBurstProbe probe = transport switch
        {
            "postgresql" => new PostgresqlProbe(dataSource, options.Get("queue-table", "wolverine_queues.wolverine_queue_enrolment_events"), label,
                options.Get("since", "") is { Length: > 0 } since ? DateTimeOffset.FromUnixTimeSeconds(long.Parse(since)) : null),
            "rabbitmq" => await RabbitMqProbe.Bind(options.Get("uri", "amqp://guest:guest@127.0.0.1:5672"), options.Get("exchange", "enrolment.events"),
                options.Get("routing-key", "enrolment.status-changed.v1"), options.Get("queue", $"enrolment.bench.burst-{label}"), label),
            _ => throw new ArgumentException("--transport is postgresql or rabbitmq"),
        };
        await using var _ = probe;
        await probe.Start();
        Console.Error.WriteLine($"[bus] {transport}: watching {probe.Where} for {expected:N0} overdue events of label {label}");

        // The outbox rows bound for this transport (the durable local webhooks queue keeps its own table).
        var outboxPrefix = transport == "postgresql" ? "postgresql:%" : "rabbitmq:%";
        var clock = Stopwatch.StartNew();
        DateTimeOffset? countReachedAt = null, consumableAt = null;
        long count = 0, outbox = -1;
        var nextExactCheck = TimeSpan.Zero;
        while (clock.Elapsed < timeout)
        {
            // The moment of the snapshot (each query sees the state as of its start), not of its answer.
            var observedAt = DateTimeOffset.UtcNow;
            var candidates = await probe.Count();
            if (candidates >= expected && countReachedAt is null && clock.Elapsed >= nextExactCheck)
            {
                // Cheap counts include anything else published meanwhile; the content check confirms (at most every 5 s)
                // and is the snapshot that counts.
                observedAt = DateTimeOffset.UtcNow;
                count = await probe.ExactCount();
                if (count >= expected) countReachedAt = observedAt;
                else nextExactCheck = clock.Elapsed + TimeSpan.FromSeconds(5);
            }
            if (countReachedAt is not null)
            {
                await using var cmd = dataSource.CreateCommand("select count(*) from enrolment.wolverine_outgoing_envelopes where destination like $1");
                cmd.Parameters.Add(new NpgsqlParameter { Value = outboxPrefix });
                outbox = (long)(await cmd.ExecuteScalarAsync())!;
                if (outbox == 0) { consumableAt = observedAt; break; }
            }
            // Coarse while far off, so that polling a growing queue table takes little from the burst it measures.
            await Task.Delay(candidates < expected * 0.95 ? TimeSpan.FromSeconds(1) : PollEvery);
        }
        if (countReachedAt is null) count = await probe.ExactCount();

        // The due instant as the burst's own overdue events record it.
        await using var due = dataSource.CreateCommand("""
            select min((data->>'dueDate')::timestamptz), max((data->>'dueDate')::timestamptz), count(*)
            from enrolment.mt_events where type = 'enrolment_became_overdue' and tenant_id like $1
            """);
        due.Parameters.Add(new NpgsqlParameter { Value = $"eu-west-1\\_{label}%" });
        DateTimeOffset? dueAt = null, dueMax = null;
        long overdue;
        await using (var r = await due.ExecuteReaderAsync())
        {
            await r.ReadAsync();
            if (!r.IsDBNull(0)) { dueAt = r.GetFieldValue<DateTimeOffset>(0); dueMax = r.GetFieldValue<DateTimeOffset>(1); }
            overdue = r.GetInt64(2);
        }
        double? Since(DateTimeOffset? t) => t is { } x && dueAt is { } d ? (x - d).TotalSeconds : null;
        var seconds = Since(consumableAt);
        var detail = await probe.Verify(dueAt);
        Console.Out.WriteLine(JsonSerializer.Serialize(new
        {
            transport, expected, consumable = count, overdueEvents = overdue, seconds, eventsPerSecond = seconds > 0 ? expected / seconds : null,
            countReachedSeconds = Since(countReachedAt), outboxLeft = outbox, dueAt, dueInstantsDiffer = dueAt != dueMax,
            waitedSeconds = clock.Elapsed.TotalSeconds, measuredBy = probe.Where, detail,
        }, JsonSerializerOptions.Web));
        return consumableAt is null ? 1 : 0;
    }

    private interface IBurstProbe : IAsyncDisposable
    {
        string Where { get; }
        Task Start();
        /// <summary>Cheap: everything that arrived since <see cref="Start"/>.</summary>
        Task<long> Count();
        /// <summary>Only the burst's own: overdue events of the label's tenants.</summary>
        Task<long> ExactCount();
        /// <summary>After the burst: what a consumer would find, for the report's note.</summary>
        Task<object?> Verify(DateTimeOffset? dueAt);
    }

    /// <param name="since">Rows inserted from then on count (--since, unix seconds: when the due set was seeded); else from the start.</param>
    private sealed class PostgresqlProbe(NpgsqlDataSource dataSource, string table, string label, DateTimeOffset? since) : IBurstProbe
    {
        private DateTimeOffset _since;
        public string Where => table;

        public async Task Start()
        {
            if (since is { } s) { _since = s; return; }
            await using var now = dataSource.CreateCommand("select now()");
            _since = (DateTimeOffset)(await now.ExecuteScalarAsync())!;
        }

        public async Task<long> Count()
        {
            await using var cmd = dataSource.CreateCommand($"select count(*) from {table} where timestamp >= $1");
            cmd.Parameters.Add(new NpgsqlParameter { Value = _since });
            return (long)(await cmd.ExecuteScalarAsync())!;
        }

        // The queue row's body is Wolverine's envelope with the message's JSON inside: matched as bytes.
        private string Burst => $"from {table} where timestamp >= $1 and position(convert_to('\"eventType\":\"enrolment.overdue\"', 'UTF8') in body) > 0 " +
                                $"and position(convert_to($2, 'UTF8') in body) > 0";

        public async Task<long> ExactCount()
        {
            await using var cmd = dataSource.CreateCommand($"select count(*) {Burst}");
            cmd.Parameters.Add(new NpgsqlParameter { Value = _since });
            cmd.Parameters.Add(new NpgsqlParameter { Value = $"\"tenantId\":\"eu-west-1_{label}" });
            return (long)(await cmd.ExecuteScalarAsync())!;
        }

        public async Task<object?> Verify(DateTimeOffset? dueAt)
        {
            // The rows' own insert times (the inserting transaction's start): when the queue writes themselves ran.
            await using var cmd = dataSource.CreateCommand($"select count(*), count(distinct id), min(timestamp), max(timestamp) {Burst}");
            cmd.Parameters.Add(new NpgsqlParameter { Value = _since });
            cmd.Parameters.Add(new NpgsqlParameter { Value = $"\"tenantId\":\"eu-west-1_{label}" });
            await using var r = await cmd.ExecuteReaderAsync();
            await r.ReadAsync();
            double? S(int i) => r.IsDBNull(i) || dueAt is null ? null : (r.GetFieldValue<DateTimeOffset>(i) - dueAt.Value).TotalSeconds;
            return new { rows = r.GetInt64(0), distinctEnvelopes = r.GetInt64(1), firstRowSeconds = S(2), lastRowSeconds = S(3) };
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private sealed class RabbitMqProbe(IConnection connection, IChannel channel, string exchange, string routingKey, string queue, string label) : IBurstProbe
    {
        public string Where => $"queue {queue} bound to exchange {exchange} with {routingKey}";

        public static async Task<RabbitMqProbe> Bind(string uri, string exchange, string routingKey, string queue, string label)
        {
            var connection = await new ConnectionFactory { Uri = new Uri(uri) }.CreateConnectionAsync("enrolment-bench");
            var channel = await connection.CreateChannelAsync();
            return new RabbitMqProbe(connection, channel, exchange, routingKey, queue, label);
        }

        public async Task Start()
        {
            // Bound before the burst, as a consumer's queue would be; the exchange is the service's (declared at its start).
            await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
            await channel.QueueBindAsync(queue, exchange, routingKey);
            await channel.QueuePurgeAsync(queue);
        }

        public async Task<long> Count() => (await channel.QueueDeclarePassiveAsync(queue)).MessageCount;

        // Nothing else publishes to the bench's own exchange during the burst; Verify reads every message to check.
        public Task<long> ExactCount() => Count();

        public async Task<object?> Verify(DateTimeOffset? dueAt)
        {
            var ready = (long)(await channel.QueueDeclarePassiveAsync(queue)).MessageCount;
            long received = 0, burst = 0;
            var enrolments = new HashSet<string>();
            var done = new TaskCompletionSource();
            var lastMessage = Stopwatch.StartNew();
            await channel.BasicQosAsync(0, 2000, false);
            var consumer = new AsyncEventingBasicConsumer(channel);
            consumer.ReceivedAsync += (_, delivery) =>
            {
                lastMessage.Restart();
                using var json = JsonDocument.Parse(delivery.Body);
                var root = json.RootElement;
                if (root.GetProperty("eventType").GetString() == "enrolment.overdue" &&
                    root.GetProperty("tenantId").GetString()!.StartsWith($"eu-west-1_{label}", StringComparison.Ordinal))
                {
                    burst++;
                    enrolments.Add(root.GetProperty("enrolmentId").GetString()!);
                }
                if (++received >= ready) done.TrySetResult();
                return Task.CompletedTask;
            };
            var clock = Stopwatch.StartNew();
            var tag = await channel.BasicConsumeAsync(queue, autoAck: true, consumer);
            while (!done.Task.IsCompleted && lastMessage.Elapsed < TimeSpan.FromSeconds(10)) await Task.WhenAny(done.Task, Task.Delay(500));
            var consumeSeconds = clock.Elapsed.TotalSeconds;
            await channel.BasicCancelAsync(tag);
            return new { ready, consumed = received, overdueEventsOfBurst = burst, distinctEnrolments = enrolments.Count, consumeSeconds };
        }

        public async ValueTask DisposeAsync()
        {
            try { await channel.QueueDeleteAsync(queue); } catch (Exception e) { Console.Error.WriteLine($"[bus] could not delete {queue}: {e.Message}"); }
            await channel.CloseAsync();
            await connection.CloseAsync();
        }
    }
}
