using System.Text;
using System.Text.Json;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Api.Infrastructure.OpenApi;
using JasperFx;
using JasperFx.Events;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Npgsql;
using Wolverine.Http;
using Wolverine.Marten.Publishing;
using Wolverine.Runtime;

namespace Enrolment.Api.Features.Completions;

/// <summary>One item's answer: what POST /completions answers for it (its result, or its problem document).</summary>
public sealed record BulkCompletionResult(int Index, int Status, object? Body);

public sealed record BulkCompletionResults(IReadOnlyList<BulkCompletionResult> Results);

/// <summary>The JSON body, for the OpenAPI document only: the endpoint reads the body itself (JSON or NDJSON).</summary>
public sealed record BulkCompletionsRequest(IReadOnlyList<RecordCompletionRequest> Items);

/// <summary>
/// POST /completions/bulk: up to 1,000 completions, as <c>{"items":[…]}</c> or NDJSON, answered 207 with one result per
/// item in request order. Each item is POST /completions in its own transaction (and outbox), one after the other: a bad
/// item or a lost race spoils nothing else, and an id repeated later in the batch sees the earlier one committed.
/// </summary>
public static class RecordCompletionsInBulkEndpoint
{
    public const int MaxItems = 1000;
    private const int Attempts = 3;

    [WolverinePost("/completions/bulk", OperationId = "recordCompletionsInBulk"), Authorize(Policy = AuthPolicies.Write)]
    [Tags("Completions")]
    [EndpointSummary("Record up to 1,000 completions: {\"items\":[…]} as JSON, or one completion a line as application/x-ndjson. 207 with one result per item, in order: the status and body POST /completions answers for it.")]
    [ProducesResponseType<BulkCompletionResults>(StatusCodes.Status207MultiStatus)]
    [DocumentedBody(typeof(BulkCompletionsRequest), NdjsonLine = typeof(RecordCompletionRequest))]
    public static async Task<IResult> Post(HttpContext http, IWolverineRuntime runtime, OutboxedSessionFactory sessions, IClock clock, ILogger<BulkCompletionResults> logger, CancellationToken ct)
    {
        var tenantId = http.User.FindFirst(BasicAuthenticationHandler.TenantClaim)!.Value;
        var body = await new StreamReader(http.Request.Body, Encoding.UTF8).ReadToEndAsync(ct);
        var ndjson = http.Request.ContentType?.StartsWith("application/x-ndjson", StringComparison.OrdinalIgnoreCase) == true;

        List<string> items;
        if (ndjson)
        {
            items = body.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Trim().Length > 0).ToList();
        }
        else
        {
            JsonDocument document;
            try { document = JsonDocument.Parse(body); }
            catch (JsonException) { return Problems.Make(400, "malformed-json", "Malformed JSON.", "The request body is not valid JSON. Send {\"items\":[…]} or application/x-ndjson."); }
            using (document)
            {
                if (document.RootElement.ValueKind != JsonValueKind.Object || !document.RootElement.TryGetProperty("items", out var array) || array.ValueKind != JsonValueKind.Array)
                    return Problems.Validation("items", "The body must be an object with an 'items' array of completions.");
                items = array.EnumerateArray().Select(e => e.GetRawText()).ToList();
            }
        }
        if (items.Count is 0 or > MaxItems)
            return Problems.Validation("items", $"A bulk request holds 1 to {MaxItems} completions; this one holds {items.Count}.");

        var results = new List<BulkCompletionResult>(items.Count);
        for (var index = 0; index < items.Count; index++)
        {
            RecordCompletionRequest? request;
            try { request = JsonSerializer.Deserialize<RecordCompletionRequest>(items[index], Json.Options); }
            catch (JsonException e)
            {
                var problem = Problems.Make(400, "malformed-json", "Malformed JSON.", $"Item {index} is not a JSON completion: {e.Message}").ProblemDetails;
                Problems.HideInternals(problem);
                results.Add(new BulkCompletionResult(index, 400, problem));
                continue;
            }
            results.Add(await RecordOne(index, request, tenantId, http.TraceIdentifier, runtime, sessions, clock, logger, ct));
        }
        return Results.Json(new BulkCompletionResults(results), statusCode: StatusCodes.Status207MultiStatus);
    }

    /// <summary>POST /completions for one item, committed on its own; a lost race is tried again, then answered 409.</summary>
    private static async Task<BulkCompletionResult> RecordOne(int index, RecordCompletionRequest? request, string tenantId, string correlationId,
        IWolverineRuntime runtime, OutboxedSessionFactory sessions, IClock clock, ILogger logger, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            // A message context of its own, so the item's integration events go out with its own commit only.
            var context = new MessageContext(runtime, tenantId) { CorrelationId = correlationId };
            await using var session = sessions.OpenSession(context, tenantId);
            try
            {
                var answer = await RecordCompletionEndpoint.Post(request, session, context, clock, ct);
                var status = (answer as IStatusCodeHttpResult)?.StatusCode ?? StatusCodes.Status200OK;
                if (status is >= 200 and < 300) await session.SaveChangesAsync(ct);
                return new BulkCompletionResult(index, status, (answer as IValueHttpResult)?.Value);
            }
            catch (Exception e) when (LostRace(e) && attempt < Attempts)
            {
                logger.LogInformation("Bulk completion item {Index} lost a race (attempt {Attempt}); trying it again", index, attempt);
            }
            catch (Exception e) when (LostRace(e))
            {
                return new BulkCompletionResult(index, 409, Problems.Conflict("concurrency-conflict",
                    "Another request changed the same enrolment at the same time, several times over. Send this item again.").ProblemDetails);
            }
            catch (Exception e) when (Unstorable(e))
            {
                return new BulkCompletionResult(index, 422, Problems.Make(422, "unstorable-value", "The request is not valid.",
                    "The item holds a value that cannot be stored (for example a NUL character in a text).").ProblemDetails);
            }
        }
    }

    /// <summary>The races POST /completions answers 409 (see ExceptionMapper): optimistic concurrency, a concurrent insert, a deadlock.</summary>
    private static bool LostRace(Exception exception)
    {
        for (Exception? e = exception; e is not null; e = e.InnerException)
            if (e is ConcurrencyException or ExistingStreamIdCollisionException or Marten.Exceptions.ExistingStreamIdCollisionException or DocumentAlreadyExistsException
                or PostgresException { SqlState: PostgresErrorCodes.UniqueViolation or ['4', '0', ..] }) return true;
        return false;
    }

    private static bool Unstorable(Exception exception)
    {
        for (Exception? e = exception; e is not null; e = e.InnerException)
            if (e is PostgresException { SqlState: ['2', '2', ..] }) return true;
        return false;
    }
}
