using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Enrolment.Api.Infrastructure;

namespace Enrolment.Api.Features.Mimecast;

/// <summary>
/// Mimecast API 1.0's response envelope: <c>{ "meta": { "status" }, "data": [...], "fail": [...] }</c>. The HTTP status
/// says whether the call was processed at all; <c>fail</c> says which items of a processed call failed.
/// </summary>
public sealed record MimecastEnvelope(MimecastMeta Meta, IReadOnlyList<object> Data, IReadOnlyList<MimecastFail> Fail)
{
    public static MimecastEnvelope Error(int status, string code, string message, JsonNode? key = null) =>
        new(new MimecastMeta(status), [], [new MimecastFail(key, [new MimecastError(code, message)])]);

    public IResult ToResult() => Results.Json(this, Json.Options, statusCode: Meta.Status);

    public Task WriteAsync(HttpContext context)
    {
        context.Response.StatusCode = Meta.Status;
        return context.Response.WriteAsJsonAsync(this, Json.Options, context.RequestAborted);
    }
}

public sealed record MimecastMeta(int Status, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] MimecastPagination? Pagination = null);

/// <summary>
/// Paging of <c>data: []</c>: <c>pageToken</c> echoes the token this page was asked with, <c>next</c> is the token of
/// the following page and is absent on the last one.
/// </summary>
public sealed record MimecastPagination(
    int PageSize,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? PageToken,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Next);

/// <summary>One failed item: the request item as sent (<c>key</c>) and why it failed.</summary>
public sealed record MimecastFail(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] JsonNode? Key,
    IReadOnlyList<MimecastError> Errors);

/// <summary>None of this endpoint's failures goes away by sending the same request again, so retryable is always false.</summary>
public sealed record MimecastError(string Code, string Message)
{
    public bool Retryable => false;
}

/// <summary>The error codes this endpoint answers with (docs/mimecast.md lists them with their HTTP status).</summary>
public static class MimecastCodes
{
    // 401: the request is not authenticated (Mimecast's "Authorization information is either missing, incomplete or incorrect").
    public const string MissingHeader = "err_xdk_missing_header";
    public const string AuthorizationMalformed = "err_xdk_authorization_malformed";
    public const string UnknownAccessKey = "err_xdk_unknown_access_key";
    public const string InvalidSignature = "err_xdk_invalid_signature";
    public const string InvalidDate = "err_xdk_invalid_date";
    public const string DateOutOfRange = "err_xdk_date_out_of_range";
    public const string InvalidRequestId = "err_xdk_invalid_request_id";
    public const string RequestIdReused = "err_xdk_request_id_reused";
    public const string AppIdMismatch = "err_xdk_app_id_mismatch";

    // 429: too many failed authentications from one client.
    public const string TooManyFailures = "err_xdk_too_many_failed_authentications";

    // 400: the request as a whole cannot be processed.
    public const string MalformedRequest = "err_request_malformed";
    public const string InvalidPagination = "err_validation_invalid_pagination";
    public const string TooManyItems = "err_validation_too_many_items";

    // 200 with a fail[] entry: one item of the request failed.
    public const string Blank = "err_validation_blank";
    public const string InvalidUserId = "err_validation_invalid_user_id";
    public const string UserNotFound = "err_training_user_not_found";
}
