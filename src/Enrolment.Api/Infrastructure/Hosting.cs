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
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using NodaTime;
using Npgsql;
using OpenTelemetry.Metrics;
using Wolverine;
using Wolverine.ErrorHandling;
using Wolverine.Http;

namespace Enrolment.Api.Infrastructure;

/// <summary>
/// What every feature stands on: logs, Kestrel's limits, the clock, problem documents, authentication and rate limits,
/// production safeguards, health, metrics, the OpenAPI document, and Wolverine itself (code generation, transactions,
/// error policies, the bus). Program.cs composes it with each feature's Configuration.cs.
/// </summary>
public static class Hosting
{
    public static void AddHosting(this WebApplicationBuilder builder, RunMode mode)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;
        var isCommand = mode.IsCommand;

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
        builder.Logging.AddFilter("Enrolment.Api.*Request", LogLevel.None);
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
        services.AddSingleton<SecretVerifier>();
        services.AddSingleton<ReadLatency>();
        services.AddSingleton<AccessTokens>();
        // Basic and bearer (access tokens; tenant secrets on /scim/v2) behind one default scheme that picks by the
        // Authorization header, so every policy below holds for both.
        services.AddAuthentication(CredentialSchemes.SchemeName)
            .AddPolicyScheme(CredentialSchemes.SchemeName, "Basic or bearer", o => o.ForwardDefaultSelector = CredentialSchemes.Select)
            .AddScheme<AuthenticationSchemeOptions, BasicAuthenticationHandler>(BasicAuthenticationHandler.SchemeName, null)
            .AddScheme<AuthenticationSchemeOptions, BearerAuthenticationHandler>(BearerAuthenticationHandler.SchemeName, null);
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

        services.AddPublishedDefaultsCheck(builder.Environment);
        services.AddTrustedProxies(configuration);
        services.AddGracefulShutdown(configuration);
        services.AddEnrolmentTracing(configuration);

        services.AddHealthChecks()
            .AddNpgSql(sp => sp.GetRequiredService<NpgsqlDataSource>(), name: "postgresql", tags: ["ready"], timeout: TimeSpan.FromSeconds(3));

        // Metrics at GET /metrics (Prometheus text): HTTP, runtime, Marten, Wolverine, and each feature's own meters
        // (added in its Configuration.cs: transition lag, change-feed lag, summaries' lag).
        services.AddOpenTelemetry().WithMetrics(m => m
            .AddAspNetCoreInstrumentation()
            .AddRuntimeInstrumentation()
            .AddMeter("Marten", "Wolverine:*")
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
            // Wolverine counts its inbox and outbox rows by status for the /metrics gauges (wolverine-inbox-count and the
            // like): a scan of every envelope kept after handling (KeepAfterMessageHandling, 5 minutes), which after a
            // 100,000-enrolment deadline ran every 5 s at ~140 ms. Every 30 s is as fresh as a Prometheus scrape needs.
            opts.Durability.UpdateMetricsPeriod = configuration.GetValue("Durability:MetricsPeriod", TimeSpan.FromSeconds(30));
            // Several nodes (docs/scale-out.md): each node writes a health check to the master every HealthCheckPollingTime;
            // a node silent for StaleNodeTimeout, seen so on StaleNodeEjectionThreshold checks in a row, is removed and its
            // agents (each shard's time-driven transitions) go to the others. Wolverine's defaults (10 s, 1 min, 2) left a
            // killed node's shards without transitions for about 80 s; these make it about 30 s. Lower costs more writes to
            // the master and risks taking the agents of a node that is only slow (a long GC pause, a starved CPU).
            opts.Durability.HealthCheckPollingTime = configuration.GetValue("Durability:HealthCheckPollingTime", TimeSpan.FromSeconds(5));
            opts.Durability.StaleNodeTimeout = configuration.GetValue("Durability:StaleNodeTimeout", TimeSpan.FromSeconds(20));
            opts.Durability.CheckAssignmentPeriod = configuration.GetValue("Durability:CheckAssignmentPeriod", TimeSpan.FromSeconds(10));

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

            // Marten wraps driver errors (a timeout, a cut connection) in its own exceptions: match them inside too, or the
            // message would go straight to the dead letters.
            opts.OnException<NpgsqlException>().OrInner<NpgsqlException>()
                .RetryWithCooldown(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(30))
                .Then.ScheduleRetry(TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(5));
        });

    }

    /// <summary>The outer middleware: proxies, shutdown, the header limit, and errors as problem documents.</summary>
    public static void UseEdge(this WebApplication app)
    {
        app.UseTrustedProxies();
        app.UseGracefulShutdown();
        app.UseRequestHeaderLimit();
        app.UseExceptionHandler();
        // Errors the framework answers itself, with no body (a method the route does not take, a media type no endpoint
        // reads, ...): the same problem documents as every other error.
        app.UseStatusCodePages(context => FrameworkStatus(context.HttpContext));
    }

    private static Task FrameworkStatus(HttpContext http)
    {
        var status = http.Response.StatusCode;
        var (code, title, detail) = status switch
        {
            StatusCodes.Status405MethodNotAllowed => ("method-not-allowed", "Method not allowed.",
                $"{http.Request.Path} does not take {http.Request.Method}" + (http.Response.Headers.Allow.Count > 0 ? $"; it takes {http.Response.Headers.Allow}." : ".")),
            StatusCodes.Status406NotAcceptable => ("not-acceptable", "Not acceptable.", "The Accept header names no media type this route answers with (application/json; see /openapi/v1.json)."),
            StatusCodes.Status413PayloadTooLarge => ("body-too-large", "Request body too large.", "The request body is over the service's limit (Limits:MaxRequestBodyBytes)."),
            StatusCodes.Status415UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type.", "Send the body as application/json (see /openapi/v1.json)."),
            StatusCodes.Status404NotFound => ("not-found", "Not found.", $"There is no route {http.Request.Path}."),
            _ => ("http-" + status, ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } phrase ? phrase + "." : "Error.", "The request was refused before reaching an endpoint."),
        };
        return Problems.Make(status, code, title, detail).ExecuteAsync(http);
    }

    /// <summary>Who may call: authentication, the per-tenant rate limit (with its headers), authorization.</summary>
    public static void UseAccessControl(this WebApplication app)
    {
        app.UseAuthentication();
        app.UseRateLimitHeaders();
        app.UseRateLimiter();
        app.UseAuthorization();
    }

    /// <summary>The operators' routes: liveness, readiness, metrics, and the OpenAPI document with its API page.</summary>
    public static void MapOperatorEndpoints(this WebApplication app)
    {
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = HealthResponse.Write });
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready"), ResponseWriter = HealthResponse.Write });
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapEnrolmentOpenApi();
    }

    /// <summary>Wolverine's HTTP endpoints: the tenant from the authenticated credentials, routes warmed up, unparseable query values refused.</summary>
    public static void Configure(WolverineHttpOptions opts)
    {
        opts.TenantId.IsClaimTypeNamed(BasicAuthenticationHandler.TenantClaim);
        opts.WarmUpRoutes = RouteWarmup.Eager;
        opts.RejectUnparseableQueryValues = true;
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
