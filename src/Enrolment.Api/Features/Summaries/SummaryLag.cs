using System.Diagnostics.Metrics;
using Marten;
using Npgsql;

namespace Enrolment.Api.Features.Summaries;

/// <summary>
/// /metrics: enrolment_summary_lag, how many committed events the summary projection has not processed yet (0 when
/// the summaries are current). A value that keeps growing means the daemon is stopped or failing: see its log lines
/// (category Marten.Events.Daemon).
/// </summary>
public sealed class SummaryLag(NpgsqlDataSource dataSource, IDocumentStore store, ILogger<SummaryLag> logger) : IHostedService, IDisposable
{
    public const string MeterName = "Enrolment.Summaries";
    private Meter? _meter;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _meter = new Meter(MeterName);
        _meter.CreateObservableGauge("enrolment.summary.lag", Measure, "{event}", "Committed events the summary projection has not processed yet.");
        return Task.CompletedTask;
    }

    private IEnumerable<Measurement<long>> Measure()
    {
        var schema = store.Options.Events.DatabaseSchemaName;
        long lag;
        try
        {
            using var command = dataSource.CreateCommand(
                $"select greatest(0, coalesce((select max(seq_id) from {schema}.mt_events), 0) - coalesce((select last_seq_id from {schema}.mt_event_progression where name = $1), 0))");
            command.Parameters.Add(new NpgsqlParameter { Value = SummaryProjection.Name + ":All" });
            lag = (long)command.ExecuteScalar()!;
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
        {
            logger.LogWarning(e, "Could not measure the summary projection's lag for /metrics");
            yield break;
        }
        yield return new Measurement<long>(lag);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose() => _meter?.Dispose();
}
