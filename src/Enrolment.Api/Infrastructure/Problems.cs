using System.Text.RegularExpressions;
using Enrolment.Domain;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Enrolment.Api.Infrastructure;

/// <summary>The RFC 9457 problem documents the API answers with; one place, so every error looks the same.</summary>
public static class Problems
{
    public const string TypeBase = "https://enrolment.example/problems/";

    public static ProblemHttpResult Validation(string detail, IDictionary<string, string[]>? errors = null) =>
        Make(StatusCodes.Status422UnprocessableEntity, "invalid-request", "The request is not valid.", detail, errors);

    public static ProblemHttpResult Validation(string field, string message) =>
        Validation(message, new Dictionary<string, string[]> { [field] = [message] });

    public static ProblemHttpResult NotFound(string detail) =>
        Make(StatusCodes.Status404NotFound, "not-found", "Not found.", detail);

    public static ProblemHttpResult Conflict(string code, string detail) =>
        Make(StatusCodes.Status409Conflict, code, "Conflict.", detail);

    public static ProblemHttpResult From(Rejection rejection) => rejection.Kind switch
    {
        RejectionKind.Conflict => Conflict(rejection.Code, rejection.Message),
        _ => Make(StatusCodes.Status422UnprocessableEntity, rejection.Code, "The request is not valid.", rejection.Message),
    };

    // System.Text.Json's message for a value of the wrong type names the .NET type it was reading into.
    private static readonly Regex ConvertedTo = new(@"The JSON value could not be converted to .+?\.(?= Path:|\s*$)", RegexOptions.CultureInvariant);

    /// <summary>
    /// Wolverine answers a body it cannot deserialise with System.Text.Json's message as the detail, which names the .NET type
    /// it was reading into ("could not be converted to Enrolment.Api.…"): keep the JSON path and position, drop the type.
    /// </summary>
    public static void HideInternals(ProblemDetails problem)
    {
        if (problem.Detail is { } detail && detail.Contains("could not be converted to", StringComparison.Ordinal))
            problem.Detail = ConvertedTo.Replace(detail, "The JSON value does not have the type this field takes.");
    }

    /// <summary>
    /// Problem documents the framework writes itself (an unreadable body, an unknown route) get a <c>code</c> too, so that
    /// clients can rely on every error having one.
    /// </summary>
    public static void EnsureCode(ProblemDetails problem)
    {
        if (problem.Extensions.ContainsKey("code")) return;
        problem.Extensions["code"] = problem.Status switch
        {
            StatusCodes.Status400BadRequest when problem.Extensions.ContainsKey("bytePositionInLine") => "malformed-json",
            StatusCodes.Status400BadRequest => "bad-request",
            StatusCodes.Status404NotFound => "not-found",
            StatusCodes.Status405MethodNotAllowed => "method-not-allowed",
            StatusCodes.Status415UnsupportedMediaType => "unsupported-media-type",
            { } status => $"http-{status}",
            null => "error",
        };
    }

    public static ProblemHttpResult Make(int status, string code, string title, string detail, IDictionary<string, string[]>? errors = null)
    {
        var extensions = new Dictionary<string, object?> { ["code"] = code };
        if (errors is not null) extensions["errors"] = errors;
        return TypedResults.Problem(detail: detail, statusCode: status, title: title, type: TypeBase + code, extensions: extensions);
    }
}
