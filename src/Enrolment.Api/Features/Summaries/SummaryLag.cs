using System.Diagnostics.Metrics;
using Enrolment.Api.Infrastructure;
using Marten;
using Npgsql;

namespace Enrolment.Api.Features.Summaries;

/// <summary>
/// /metrics: enrolment_summary_lag, how many committed events the summary projection has not processed yet (0 when
/// the summaries are current). A value that keeps growing means the daemon is stopped or failing: see its log lines
/// (category Marten.Events.Daemon).
/// </summary>
public sealed class SummaryLag(IDocumentStore store, ILogger<SummaryLag> logger) : IHostedService, IDisposable
{
    public const string MeterName = "Enrolment.Summaries";

    // One meter for the process (as ChangeFeedMetrics): a meter per host, disposed with its host, took the metric away
    // from the other hosts' /metrics too. It measures through the latest host still running (one in production).
    private static readonly Meter Meter = new(MeterName);
    private static readonly List<SummaryLag> Running = [];

    static SummaryLag() =>
        Meter.CreateObservableGauge("enrolment.summary.lag", () => Latest()?.Measure() ?? [], "{event}",
            "Committed events the summary projection has not processed yet.");

    private static SummaryLag? Latest()
    {
        lock (Running) return Running.Count > 0 ? Running[^1] : null;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        lock (Running) Running.Add(this);
        return Task.CompletedTask;
    }

    private IEnumerable<Measurement<long>> Measure()
    {
        var schema = store.Options.Events.DatabaseSchemaName;
        var measurements = new List<Measurement<long>>();
        try
        {
            // One value per shard (tag "shard"): each database has its own daemon and its own sequence numbers.
            foreach (var shard in store.Shards().AsTask().GetAwaiter().GetResult())
            {
                using var command = Infrastructure.TenantPool.DataSourceOf(shard).CreateCommand(
                    $"select greatest(0, coalesce((select max(seq_id) from {schema}.mt_events), 0) - coalesce((select last_seq_id from {schema}.mt_event_progression where name = $1), 0))");
                command.Parameters.Add(new NpgsqlParameter { Value = SummaryProjection.Name + ":All" });
                measurements.Add(new Measurement<long>((long)command.ExecuteScalar()!, new KeyValuePair<string, object?>("shard", Infrastructure.TenantPool.ShardName(shard))));
            }
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException or ObjectDisposedException)
        {
            logger.LogWarning(e, "Could not measure the summary projection's lag for /metrics");
            return [];
        }
        return measurements;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        lock (Running) Running.Remove(this);
    }
}
