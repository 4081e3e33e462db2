using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Enrolment.Api.Infrastructure.OpenApi;

/// <summary>
/// The endpoint also reads <c>application/x-ndjson</c>: one JSON value of <see cref="LineType"/> a line. OpenAPI 3.1 has
/// no way to say "each line"; the media type's schema is the line's, and its description says so.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class ConsumesNdjsonAttribute(Type lineType) : Attribute
{
    public const string MediaType = "application/x-ndjson";

    public Type LineType { get; } = lineType;

    /// <summary>
    /// Bodies an endpoint reads itself (from HttpContext): Wolverine does not describe a <c>[Consumes(typeof(T), …)]</c>
    /// of such an endpoint, so its media types are added here, with this attribute's NDJSON line.
    /// </summary>
    internal static async Task Transform(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        var metadata = context.Description.ActionDescriptor.EndpointMetadata;
        var accepts = metadata.OfType<Microsoft.AspNetCore.Http.Metadata.IAcceptsMetadata>().Where(a => a.RequestType is not null).ToList();
        var ndjson = metadata.OfType<ConsumesNdjsonAttribute>().FirstOrDefault();
        if (accepts.Count == 0 && ndjson is null) return;
        operation.RequestBody ??= new OpenApiRequestBody { Required = true };
        if (operation.RequestBody is not OpenApiRequestBody body) return;
        body.Content ??= new Dictionary<string, OpenApiMediaType>();
        foreach (var accept in accepts)
            foreach (var contentType in accept.ContentTypes)
                if (!body.Content.ContainsKey(contentType))
                    body.Content[contentType] = new OpenApiMediaType { Schema = await context.GetOrCreateSchemaAsync(accept.RequestType!, null, ct) };
        if (ndjson is null) return;
        body.Content[MediaType] = new OpenApiMediaType { Schema = await context.GetOrCreateSchemaAsync(ndjson.LineType, null, ct) };
        body.Description ??= $"As `application/json`, or as `{MediaType}`: one {ndjson.LineType.Name} a line (the schema given for that media type is the line's).";
    }
}
