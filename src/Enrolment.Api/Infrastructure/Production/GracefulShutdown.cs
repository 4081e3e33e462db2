using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Enrolment.Api.Infrastructure.Production;

/// <summary>The "Shutdown" configuration section (README, Running in production).</summary>
public sealed class ShutdownSettings
{
    /// <summary>
    /// After SIGTERM, how long requests are still served while /health/ready already answers 503, so that a load
    /// balancer notices and stops sending new ones (set it to its health-check interval times its failure threshold).
    /// </summary>
    public TimeSpan DrainDelay { get; set; } = TimeSpan.Zero;

    /// <summary>After the drain delay, how long requests in flight, a transitions batch and outbox sends get to finish.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(20);
}

/// <summary>
/// SIGTERM: readiness turns 503 at once; after Shutdown:DrainDelay any request that still reaches the pipeline is
/// answered 503 with Retry-After and Connection: close, while Kestrel stops listening and lets the requests in flight
/// finish. The host then stops Wolverine (outbox sends finish or stay in the outbox for the next node) and the
/// time-driven transitions (a batch commits or rolls back whole, and stays due). The process exits within
/// DrainDelay + Timeout.
/// </summary>
public static class GracefulShutdown
{
    public static void AddGracefulShutdown(this IServiceCollection services, IConfiguration configuration)
    {
        var settings = configuration.GetSection("Shutdown").Get<ShutdownSettings>() ?? new ShutdownSettings();
        services.AddSingleton(settings);
        services.AddSingleton<ShutdownState>();
        services.Configure<HostOptions>(o => o.ShutdownTimeout = settings.DrainDelay + settings.Timeout);
        services.AddHostedService<DrainOnStop>();
        services.AddHealthChecks().AddCheck<NotStoppingCheck>("shutdown", tags: ["ready"]);
    }

    /// <summary>Early in the pipeline: a request that arrives once the drain delay is over is refused, not started.</summary>
    public static void UseGracefulShutdown(this WebApplication app)
    {
        var state = app.Services.GetRequiredService<ShutdownState>();
        app.Lifetime.ApplicationStopping.Register(() => state.Stopping = true);
        app.Use(async (context, next) =>
        {
            if (!state.Refusing) { await next(context); return; }
            context.Response.Headers.RetryAfter = "1";
            context.Response.Headers.Connection = "close";
            await Problems.Make(StatusCodes.Status503ServiceUnavailable, "shutting-down", "The service is shutting down.",
                "This instance is stopping and takes no new requests. Retry: another instance (or this one after its restart) will answer.").ExecuteAsync(context);
        });
    }

    internal sealed class ShutdownState
    {
        public volatile bool Stopping;
        public volatile bool Refusing;
    }

    /// <summary>
    /// Its StoppingAsync runs after ApplicationStopping and before any hosted service (Kestrel first) is stopped: the
    /// drain delay happens there, while everything still works.
    /// </summary>
    private sealed class DrainOnStop(ShutdownState state, ShutdownSettings settings, ILogger<DrainOnStop> logger) : IHostedLifecycleService
    {
        public async Task StoppingAsync(CancellationToken cancellationToken)
        {
            state.Stopping = true;
            logger.LogInformation("Shutting down: /health/ready answers 503; serving requests for another {DrainDelay}, then refusing new ones with 503 " +
                                  "and giving those in flight up to {Timeout} to finish", settings.DrainDelay, settings.Timeout);
            if (settings.DrainDelay > TimeSpan.Zero)
            {
                try { await Task.Delay(settings.DrainDelay, cancellationToken); }
                catch (OperationCanceledException) { }
            }
            state.Refusing = true;
        }

        public Task StoppedAsync(CancellationToken cancellationToken)
        {
            logger.LogInformation("Shut down: Kestrel, Wolverine and the time-driven transitions have stopped");
            return Task.CompletedTask;
        }

        public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class NotStoppingCheck(ShutdownState state) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(state.Stopping
                ? HealthCheckResult.Unhealthy("This instance is shutting down; send requests elsewhere.")
                : HealthCheckResult.Healthy());
    }
}
