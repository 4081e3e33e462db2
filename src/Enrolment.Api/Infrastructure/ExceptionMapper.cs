using System.Text.Json;
using JasperFx;
using JasperFx.Events;
using Microsoft.AspNetCore.Diagnostics;
using Npgsql;

namespace Enrolment.Api.Infrastructure;

/// <summary>
/// The last line of defence: faults no endpoint handled become problem documents. What a client can cause
/// (bad JSON, an oversized body, a lost race) gets its 4xx; a database outage is a 503 so callers retry;
/// anything else is a 500 with a trace id and no internals (the details go to the log).
/// </summary>
public sealed class ExceptionMapper(ILogger<ExceptionMapper> logger) : IExceptionHandler
{
    /// <summary>
    /// Marten and Wolverine wrap driver errors; an outage is an Npgsql or socket error anywhere in the chain. An error the
    /// server reports about the statement itself (a constraint, a value it cannot store) is not an outage: retrying
    /// would fail the same way, so it must not answer 503.
    /// </summary>
    private static bool DatabaseUnavailable(Exception exception)
    {
        for (Exception? e = exception; e is not null; e = e.InnerException)
        {
            if (e is PostgresException postgres) return IsOutage(postgres.SqlState);
            if (e is NpgsqlException or System.Net.Sockets.SocketException or TimeoutException) return true;
            if (e is AggregateException aggregate && aggregate.InnerExceptions.Any(DatabaseUnavailable)) return true;
        }
        return false;
    }

    /// <summary>
    /// SQLSTATEs that say the server cannot serve now: connection exceptions (08), insufficient resources (53), operator
    /// intervention such as a shutdown or a statement timeout (57), system errors (58).
    /// </summary>
    private static bool IsOutage(string sqlState) => sqlState is ['0', '8', ..] or ['5', '3' or '7' or '8', ..];

    /// <summary>A value PostgreSQL cannot store or compute (class 22, data exception), e.g. a NUL character in text or JSON.</summary>
    private static PostgresException? DataException(Exception exception)
    {
        for (Exception? e = exception; e is not null; e = e.InnerException)
            if (e is PostgresException { SqlState: [ '2', '2', .. ] } postgres) return postgres;
        return null;
    }

    /// <summary>
    /// A transaction PostgreSQL rolled back to settle a race (class 40: serialization failure, deadlock): a lost race
    /// like an optimistic-concurrency conflict, so the caller should read again and retry.
    /// </summary>
    private static bool LostRace(Exception exception)
    {
        for (Exception? e = exception; e is not null; e = e.InnerException)
            if (e is PostgresException { SqlState: ['4', '0', ..] }) return true;
        return false;
    }

    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken ct)
    {
        var moving = Sql.TenantFence.IsFenced(exception);
        var (status, code, title, detail) = moving ? (503, "tenant-moving", "Service unavailable.", "This tenant is being moved to another database server (`tenants move`); its writes are paused for a few seconds. Retry after Retry-After seconds: nothing of this request was stored.")
            : DatabaseUnavailable(exception) ? (503, "database-unavailable", "Service unavailable.", "The database is not reachable right now. Retry shortly.") : exception switch
        {
            BadHttpRequestException { StatusCode: 413 } => (413, "body-too-large", "Request body too large.", "The request body exceeds the configured limit (Limits:MaxRequestBodyBytes)."),
            BadHttpRequestException b => (b.StatusCode, "bad-request", "Bad request.", "The request could not be read: " + b.Message),
            JsonException => (400, "malformed-json", "Malformed JSON.", "The request body is not valid JSON for this route."),
            _ when DataException(exception) is not null => (422, "unstorable-value", "The request is not valid.", "The request holds a value that cannot be stored (for example a NUL character in a text)."),
            ConcurrencyException or ExistingStreamIdCollisionException or DocumentAlreadyExistsException => (409, "concurrency-conflict", "Conflict.", "Another request changed this resource at the same time. Read it again and retry."),
            _ when LostRace(exception) => (409, "concurrency-conflict", "Conflict.", "Another request changed this resource at the same time. Read it again and retry."),
            OperationCanceledException when context.RequestAborted.IsCancellationRequested => (499, "client-closed-request", "Client closed request.", "The client went away."),
            _ => (500, "internal-error", "Internal server error.", "An unexpected fault occurred. Quote the traceId to the operator."),
        };
        if (moving)
            logger.LogInformation("Request {Method} {Path} answered 503: its tenant is being moved to another shard (tenants move)", context.Request.Method, context.Request.Path);
        else if (status >= 500)
            logger.LogError(exception, "Request {Method} {Path} failed with {Status}", context.Request.Method, context.Request.Path, status);
        else
            logger.LogInformation("Request {Method} {Path} answered {Status}: {Reason}", context.Request.Method, context.Request.Path, status, exception.GetType().Name);
        if (context.Response.HasStarted) return false;
        context.Response.Clear();
        if (status == 503) context.Response.Headers.RetryAfter = moving ? "1" : "5";
        var problem = Problems.Make(status, code, title, detail);
        problem.ProblemDetails.Extensions["traceId"] = System.Diagnostics.Activity.Current?.Id ?? context.TraceIdentifier;
        await problem.ExecuteAsync(context);
        return true;
    }
}
