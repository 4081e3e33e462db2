using System.ComponentModel;
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
    [property: JsonPropertyName("errors"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), Description("422: the fields that broke a rule, with why.")] IDictionary<string, string[]>? Errors,
    [property: JsonPropertyName("lineNumber"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), Description("400 malformed-json: the line (from 0) where the JSON stopped parsing.")] long? LineNumber,
    [property: JsonPropertyName("bytePositionInLine"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), Description("400 malformed-json: the byte in that line where it stopped.")] long? BytePositionInLine,
    [property: JsonPropertyName("parameter"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), Description("400: the query parameter whose value is not of its type.")] string? Parameter);
