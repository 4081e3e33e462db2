using System.Text.Json;
using System.Text.Json.Nodes;

namespace Enrolment.Api.Features.Scim;

/// <summary>
/// Under /scim/v2 every error is a SCIM error document (RFC 7644 §3.12), including the ones the infrastructure answers
/// before an endpoint runs (401, 403 and 429 from authentication and the rate limit, 413, 415, 431, 500, 503): their
/// RFC 9457 problem documents are rewritten here, status and detail kept, Retry-After and WWW-Authenticate untouched.
/// </summary>
public static class ScimErrors
{
    public static void UseScimErrors(this WebApplication app) =>
        app.UseWhen(c => c.Request.Path.StartsWithSegments(ScimWire.BasePath, StringComparison.OrdinalIgnoreCase), branch => branch.Use(async (context, next) =>
        {
            var original = context.Response.Body;
            await using var buffer = new MemoryStream();
            context.Response.Body = buffer;
            try
            {
                await next(context);
            }
            finally
            {
                context.Response.Body = original;
            }
            buffer.Position = 0;
            if (context.Response.ContentType?.StartsWith("application/problem+json", StringComparison.OrdinalIgnoreCase) == true && buffer.Length > 0)
            {
                var problem = JsonNode.Parse(buffer.ToArray()) as JsonObject;
                var status = context.Response.StatusCode;
                var detail = ScimWire.String(problem?["detail"]) ?? ScimWire.String(problem?["title"]) ?? "Error.";
                var scimType = status == 400 ? (ScimWire.String(problem?["code"]) == "malformed-json" ? "invalidSyntax" : "invalidValue") : null;
                var body = JsonSerializer.SerializeToUtf8Bytes(ScimWire.ErrorDocument(status, scimType, detail));
                context.Response.ContentType = ScimWire.Negotiate(context.Request);
                context.Response.ContentLength = body.Length;
                await original.WriteAsync(body, context.RequestAborted);
                return;
            }
            await buffer.CopyToAsync(original, context.RequestAborted);
        }));
}
