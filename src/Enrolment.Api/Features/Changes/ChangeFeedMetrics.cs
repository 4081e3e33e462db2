using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using JasperFx.Events;
using Marten;
using Marten.Events;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Npgsql;
using Wolverine.Http;

namespace Enrolment.Api.Features.Changes;

/// <summary>The feed's lag in /metrics: how long its horizon has been held back, sampled in the background.</summary>
public sealed class ChangeFeedMetrics(IDocumentStore store, IConfiguration configuration, ILogger<ChangeFeedMetrics> logger) : BackgroundService
{
    public static readonly Meter Meter = new("Enrolment.Changes");
    public static readonly Counter<long> Served = Meter.CreateCounter<long>("enrolment.changes.served", "{change}", "Changes returned by GET /changes.");
    private static double lagSeconds;

    static ChangeFeedMetrics() =>
        Meter.CreateObservableGauge("enrolment.changes.lag", () => Volatile.Read(ref lagSeconds), "s",
            "How long the change feed trails commits at most: the age of the oldest write transaction still open in the PostgreSQL cluster, which holds back every later change.");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = configuration.GetValue("ChangeFeed:LagSampleInterval", TimeSpan.FromSeconds(5));
        using var timer = new PeriodicTimer(interval);
        do
        {
            try
            {
                // The worst shard: each tenant's feed waits only for its own shard's cluster, but one gauge reports the pool.
                double? worst = null;
                foreach (var shard in await store.Shards())
                    if (await ChangeFeedQuery.HorizonAge(TenantPool.DataSourceOf(shard), stoppingToken) is { } age) worst = Math.Max(worst ?? 0, age);
                if (worst is { } lag) Volatile.Write(ref lagSeconds, lag);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException && !stoppingToken.IsCancellationRequested)
            {
                logger.LogDebug(e, "Could not sample the change feed's lag; the metric keeps its last value");
            }
        } while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
