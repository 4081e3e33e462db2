using System.Text.Json.Serialization;

namespace Enrolment.Api.Infrastructure.OpenApi;

/// <summary>
/// The RFC 9457 problem document every error answers with (<see cref="Problems"/> writes it), as the OpenAPI document
/// describes it. Never serialised: it exists so that the schema is generated from a type rather than written by hand.
/// </summary>
public sealed record ProblemDocument(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("title")] string Title,
    [property: JsonPropertyName("status")] int Status,
    [property: JsonPropertyName("detail"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Detail,
    [property: JsonPropertyName("instance"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Instance,
    [property: JsonPropertyName("code")] string Code,
    [property: JsonPropertyName("traceId")] string TraceId,
    [property: JsonPropertyName("errors"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IDictionary<string, string[]>? Errors);
