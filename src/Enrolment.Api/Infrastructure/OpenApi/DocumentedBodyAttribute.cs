using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Enrolment.Api.Infrastructure.OpenApi;

/// <summary>
/// The body of an endpoint that reads it itself (from HttpContext), for the OpenAPI document only: <see cref="Json"/> as
/// <c>application/json</c> and, when set, <see cref="NdjsonLine"/> as each line of <c>application/x-ndjson</c> (OpenAPI
/// 3.1 cannot say "each line": that media type's schema is the line's, and the description says so). Not
/// <c>[Consumes]</c>: that one also makes routing refuse every other content type with 415.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class DocumentedBodyAttribute(Type json) : Attribute
{
    public const string NdjsonMediaType = "application/x-ndjson";

    public Type Json { get; } = json;
    public Type? NdjsonLine { get; init; }

    /// <summary>The media type of <see cref="Json"/>'s schema: application/json unless said (a form, for example).</summary>
    public string MediaType { get; init; } = "application/json";

    internal static async Task Transform(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        if (context.Description.ActionDescriptor.EndpointMetadata.OfType<DocumentedBodyAttribute>().FirstOrDefault() is not { } documented) return;
        operation.RequestBody ??= new OpenApiRequestBody { Required = true };
        if (operation.RequestBody is not OpenApiRequestBody body) return;
        body.Content ??= new Dictionary<string, OpenApiMediaType>();
        body.Content[documented.MediaType] = new OpenApiMediaType { Schema = await context.GetOrCreateSchemaAsync(documented.Json, null, ct) };
        if (documented.NdjsonLine is not { } line) return;
        body.Content[NdjsonMediaType] = new OpenApiMediaType { Schema = await context.GetOrCreateSchemaAsync(line, null, ct) };
        body.Description ??= $"As `application/json`, or as `{NdjsonMediaType}`: one {line.Name} a line (the schema given for that media type is the line's).";
    }
}
