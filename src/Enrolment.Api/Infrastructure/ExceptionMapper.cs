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
    /// <summary>Marten and Wolverine wrap driver errors; an outage is an Npgsql or socket error anywhere in the chain.</summary>
    private static bool DatabaseUnavailable(Exception exception)
    {
        for (Exception? e = exception; e is not null; e = e.InnerException)
        {
            if (e is NpgsqlException or System.Net.Sockets.SocketException or TimeoutException) return true;
            if (e is AggregateException aggregate && aggregate.InnerExceptions.Any(DatabaseUnavailable)) return true;
        }
        return false;
    }

    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken ct)
    {
        var (status, code, title, detail) = DatabaseUnavailable(exception) ? (503, "database-unavailable", "Service unavailable.", "The database is not reachable right now. Retry shortly.") : exception switch
        {
            BadHttpRequestException { StatusCode: 413 } => (413, "body-too-large", "Request body too large.", "The request body exceeds the configured limit (Limits:MaxRequestBodyBytes)."),
            BadHttpRequestException b => (b.StatusCode, "bad-request", "Bad request.", "The request could not be read: " + b.Message),
            JsonException => (400, "malformed-json", "Malformed JSON.", "The request body is not valid JSON for this route."),
            ConcurrencyException or ExistingStreamIdCollisionException or DocumentAlreadyExistsException => (409, "concurrency-conflict", "Conflict.", "Another request changed this resource at the same time. Read it again and retry."),
            NpgsqlException or TimeoutException => (503, "database-unavailable", "Service unavailable.", "The database is not reachable right now. Retry shortly."),
            OperationCanceledException when context.RequestAborted.IsCancellationRequested => (499, "client-closed-request", "Client closed request.", "The client went away."),
            _ => (500, "internal-error", "Internal server error.", "An unexpected fault occurred. Quote the traceId to the operator."),
        };
        if (status >= 500)
            logger.LogError(exception, "Request {Method} {Path} failed with {Status}", context.Request.Method, context.Request.Path, status);
        else
            logger.LogInformation("Request {Method} {Path} answered {Status}: {Reason}", context.Request.Method, context.Request.Path, status, exception.GetType().Name);
        if (context.Response.HasStarted) return false;
        context.Response.Clear();
        if (status == 503) context.Response.Headers.RetryAfter = "5";
        var problem = Problems.Make(status, code, title, detail);
        problem.ProblemDetails.Extensions["traceId"] = System.Diagnostics.Activity.Current?.Id ?? context.TraceIdentifier;
        await problem.ExecuteAsync(context);
        return true;
    }
}
