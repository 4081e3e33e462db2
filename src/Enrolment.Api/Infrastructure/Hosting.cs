using System.Threading.RateLimiting;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Api.Infrastructure.Production;
using Enrolment.Api.Infrastructure.Telemetry;
using Enrolment.Api.Infrastructure.OpenApi;
using HealthChecks.NpgSql;
using JasperFx;
using JasperFx.Events;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using NodaTime;
using Npgsql;
using OpenTelemetry.Metrics;
using Wolverine;
using Wolverine.ErrorHandling;
using Wolverine.Http;

namespace Enrolment.Api.Infrastructure;

public static class Hosting
{
    public static void AddEnrolmentService(this WebApplicationBuilder builder, string[] args)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;
        // A command (tenants, db-apply, ...) rather than the service: `run` and bare options start the service.
        var isCommand = args.Length > 0 && !args[0].StartsWith('-') && args[0] != "run";

        // Structured JSON logs. In command mode (./build/run.sh ARGS) they go to stderr, so stdout carries only
        // the command's output (a new secret on the last line, for example).
        builder.Logging.ClearProviders();
        builder.Logging.AddJsonConsole(o =>
        {
            o.IncludeScopes = true;
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z' ";
        });
        // Wolverine logs a request body it cannot deserialise at Error, with a stack trace, under the request type's
        // name. That is the client's mistake, already answered with a 400 problem document (and counted in the
        // http.server.request.duration metric by status): not something to page anyone about.
        builder.Logging.AddFilter("Enrolment.Api.Features.*Request", LogLevel.None);
        if (isCommand)
            builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);

        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = configuration.GetValue("Limits:MaxRequestBodyBytes", 4L * 1024 * 1024);
            // Twice the documented limit: RequestLimits answers the documented one with a problem document.
            k.Limits.MaxRequestHeadersTotalSize = 2 * RequestLimits.MaxRequestHeadersBytes(configuration);
            k.AddServerHeader = false;
        });

        services.AddSingleton<IClock>(new MillisecondClock(NodaTime.SystemClock.Instance));
        services.AddMemoryCache();
        services.ConfigureHttpJsonOptions(o => Json.Configure(o.SerializerOptions));
        services.AddProblemDetails(o => o.CustomizeProblemDetails = ctx =>
        {
            ctx.ProblemDetails.Extensions["traceId"] = System.Diagnostics.Activity.Current?.Id ?? ctx.HttpContext.TraceIdentifier;
            Problems.HideInternals(ctx.ProblemDetails);
            Problems.EnsureCode(ctx.ProblemDetails);
        });
        services.AddExceptionHandler<ExceptionMapper>();

        services.Configure<AuthSettings>(configuration.GetSection("Auth"));
        services.AddAuthentication(BasicAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, BasicAuthenticationHandler>(BasicAuthenticationHandler.SchemeName, null);
        services.AddAuthorizationBuilder()
            .AddPolicy(AuthPolicies.Read, p => p.RequireAuthenticatedUser().RequireAssertion(c => Scopes.Grants(c.User.FindAll(BasicAuthenticationHandler.ScopeClaim).Select(x => x.Value), Scopes.Read)))
            .AddPolicy(AuthPolicies.Write, p => p.RequireAuthenticatedUser().RequireAssertion(c => Scopes.Grants(c.User.FindAll(BasicAuthenticationHandler.ScopeClaim).Select(x => x.Value), Scopes.Write)));

        // Per-tenant request rate limit; exceeding it answers 429 with Retry-After.
        var permitsPerSecond = configuration.GetValue("Limits:RequestsPerSecondPerTenant", 1000);
        services.AddSingleton(new TenantRateLimit(permitsPerSecond));
        services.AddOptions<Microsoft.AspNetCore.RateLimiting.RateLimiterOptions>().Configure<TenantRateLimit>((o, limit) => o.GlobalLimiter = limit.Limiter);
        services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            o.OnRejected = async (ctx, ct) =>
            {
                ctx.HttpContext.Response.Headers.RetryAfter = "1";
                await Problems.Make(StatusCodes.Status429TooManyRequests, "rate-limited", "Too many requests.",
                    $"This tenant is limited to {permitsPerSecond} requests per second. Retry after a second.").ExecuteAsync(ctx.HttpContext);
            };
        });

        services.AddEnrolmentPersistence(configuration, builder.Environment);
        services.AddPublishedDefaultsCheck(builder.Environment);
        services.AddTrustedProxies(configuration);
        services.AddGracefulShutdown(configuration);
        services.AddEnrolmentTracing(configuration);
        Features.Mimecast.MimecastSetup.AddMimecast(services, configuration);
        services.Configure<Features.Time.TransitionSettings>(configuration.GetSection("Transitions"));
        if (!isCommand) services.AddHostedService<Features.Time.TimeDrivenTransitions>();
        Features.Changes.ChangeFeedSetup.AddChangeFeed(services, isCommand);
        Features.Audit.AuditSetup.AddAudit(services, configuration, isCommand);
        Features.Webhooks.WebhooksSetup.AddWebhooks(services, configuration, runSender: !isCommand);
        if (!isCommand) services.AddHostedService<Features.Summaries.SummaryLag>();

        services.AddHealthChecks()
            .AddNpgSql(sp => sp.GetRequiredService<NpgsqlDataSource>(), name: "postgresql", tags: ["ready"], timeout: TimeSpan.FromSeconds(3));

        // Metrics at GET /metrics (Prometheus text): HTTP, runtime, Marten, Wolverine and the transition lag.
        services.AddOpenTelemetry().WithMetrics(m => m
            .AddAspNetCoreInstrumentation()
            .AddRuntimeInstrumentation()
            .AddMeter(Features.Time.TimeDrivenTransitions.Meter.Name, Features.Changes.ChangeFeedMetrics.Meter.Name, "Marten", "Wolverine:*")
            .AddMeter(Features.Summaries.SummaryLag.MeterName)
            .AddPrometheusExporter());

        services.AddEnrolmentOpenApi();
        services.AddWolverineHttp();

        builder.Host.UseWolverine(opts =>
        {
            // Handlers and endpoints run code Wolverine generates for them. It ships pre-generated and compiled into this
            // assembly (Internal/Generated, written by ./build/codegen.sh; ./build/test.sh fails when it is stale) and is
            // loaded Static: no C# compiler in the running service, a faster start and a smaller resident set.
            // Codegen:TypeLoadMode=Dynamic compiles at start instead (what ./build/codegen.sh itself uses).
            opts.CodeGeneration.TypeLoadMode = configuration.GetValue("Codegen:TypeLoadMode", JasperFx.CodeGeneration.TypeLoadMode.Static);
            opts.UseRuntimeCompilation();
            opts.UseSystemTextJsonForSerialization(Json.Configure);
            opts.Policies.AutoApplyTransactions();
            opts.Policies.UseDurableLocalQueues();
            opts.Durability.ScheduledJobPollingTime = configuration.GetValue("Durability:ScheduledJobPollingTime", TimeSpan.FromSeconds(1));

            // A lost optimistic-concurrency race or a concurrent stream start is retried: the state decides again. Under
            // contention a message can lose many races in a row, and a dead-lettered fan-out batch would leave its
            // membership change half applied; since every handler is safe to run again and a race cannot be lost for
            // ever, retries go on with growing pauses (about 8 minutes in all) before the dead letters. A unique key
            // violation is the same race seen by a bulk COPY (two fan-outs starting the same enrolment).
            opts.OnException<ConcurrencyException>().Or<JasperFx.Events.ExistingStreamIdCollisionException>().Or<Marten.Exceptions.ExistingStreamIdCollisionException>().Or<DocumentAlreadyExistsException>()
                .Or<PostgresException>(e => e.SqlState == PostgresErrorCodes.UniqueViolation)
                .RetryWithCooldown(TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(250),
                    TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2))
                .Then.ScheduleRetry(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(1),
                    TimeSpan.FromMinutes(2), TimeSpan.FromMinutes(5))
                .Then.MoveToErrorQueue();
            Bus.Configure(opts, configuration.GetSection("Bus").Get<BusSettings>() ?? new BusSettings());
            Features.Webhooks.WebhooksSetup.ConfigureWolverine(opts, configuration);
            Features.Compliance.EventActors.Configure(opts);

            // Marten wraps driver errors (a timeout, a cut connection) in its own exceptions: match them inside too, or the
            // message would go straight to the dead letters.
            opts.OnException<NpgsqlException>().OrInner<NpgsqlException>()
                .RetryWithCooldown(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(30))
                .Then.ScheduleRetry(TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(5));
        });

    }

    public static void UseEnrolmentService(this WebApplication app)
    {
        app.UseTrustedProxies();
        app.UseGracefulShutdown();
        app.UseRequestHeaderLimit();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        Features.Pages.ServePages.UsePages(app);
        app.UseAuthentication();
        app.UseRateLimitHeaders();
        app.UseRateLimiter();
        app.UseAuthorization();

        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = HealthResponse.Write });
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready"), ResponseWriter = HealthResponse.Write });
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapEnrolmentOpenApi();

        Features.Mimecast.MimecastSetup.MapMimecast(app);
        app.MapWolverineEndpoints(opts =>
        {
            opts.TenantId.IsClaimTypeNamed(BasicAuthenticationHandler.TenantClaim);
            opts.WarmUpRoutes = RouteWarmup.Eager;
            opts.RejectUnparseableQueryValues = true;
            Features.Compliance.EventActors.Configure(opts);
        });
    }
}

internal static class HealthResponse
{
    public static Task Write(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsJsonAsync(new
        {
            status = report.Status.ToString().ToLowerInvariant(),
            checks = report.Entries.ToDictionary(e => e.Key, e => new { status = e.Value.Status.ToString().ToLowerInvariant(), description = e.Value.Description ?? e.Value.Exception?.Message }),
        });
    }
}

/// <summary>
/// The service's clock, to the millisecond: the precision at which every instant is stored (the events' and documents'
/// JSON). With the system clock's ticks, a live write put sub-millisecond times into the documents' timestamp columns
/// that a refold of the same events (read back at milliseconds) could never reproduce, so the same enrolment had two
/// versions of its own updatedAt, and a rebuild saw every document as changed.
/// </summary>
public sealed class MillisecondClock(IClock inner) : IClock
{
    public Instant GetCurrentInstant() => Instant.FromUnixTimeMilliseconds(inner.GetCurrentInstant().ToUnixTimeMilliseconds());
}
