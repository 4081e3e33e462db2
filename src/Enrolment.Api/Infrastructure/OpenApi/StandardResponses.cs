using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc.ApiExplorer;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Enrolment.Api.Infrastructure.OpenApi;

/// <summary>
/// The answers every route can give whatever its handler does, added to every operation so that no endpoint has to
/// repeat them: the infrastructure's problem documents (authentication, scopes, rate limits, request limits, the
/// database being down, an unexpected fault), plus the problem document as the body of any error status an endpoint
/// declares without a type (<c>[ProducesResponseType(404)]</c>). A status the endpoint declares itself is kept.
/// </summary>
internal sealed class StandardResponses : IOpenApiOperationTransformer
{
    public const string ProblemSchema = "ProblemDocument";
    public const string ProblemMediaType = "application/problem+json";

    private static readonly Dictionary<int, (string Name, string Description)> Known = new()
    {
        [400] = ("BadRequest", "Malformed JSON, or a query value of the wrong type (code `malformed-json`, `bad-request`)."),
        [401] = ("Unauthorized", "No, malformed or wrong credentials, or an unknown tenant (`WWW-Authenticate: Basic`)."),
        [403] = ("Forbidden", "Valid credentials whose secret lacks the scope this route needs (code `insufficient-scope`)."),
        [404] = ("NotFound", "No such resource in this tenant (another tenant's id is a 404 too)."),
        [409] = ("Conflict", "The write lost an optimistic-concurrency race (read again and retry), or repeats an id with a different payload."),
        [413] = ("PayloadTooLarge", "The body exceeds Limits:MaxRequestBodyBytes (code `body-too-large`)."),
        [415] = ("UnsupportedMediaType", "The body's Content-Type is not one the route reads (application/json); routing answers before authentication."),
        [422] = ("UnprocessableEntity", "A malformed id, an invalid body or query value, or impossible dates or periods; `errors` names the fields."),
        [429] = ("TooManyRequests", "Too many failed authentications from this client, or the tenant's rate limit; retry after `Retry-After` seconds."),
        [431] = ("RequestHeaderFieldsTooLarge", "The request headers exceed Limits:MaxRequestHeadersBytes (code `headers-too-large`)."),
        [500] = ("InternalServerError", "An unexpected fault; quote the `traceId` to the operator. No internals are disclosed."),
        [503] = ("ServiceUnavailable", "The database is not reachable right now (code `database-unavailable`), or the tenant is being moved to another database server (code `tenant-moving`, writes only); retry after `Retry-After` seconds."),
    };

    public async Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var document = context.Document ?? throw new InvalidOperationException("The OpenAPI operation has no document.");
        await EnsureComponents(document, context, cancellationToken);
        operation.Responses ??= new OpenApiResponses();

        var metadata = context.Description.ActionDescriptor.EndpointMetadata;
        DropUndeclared(operation, metadata);

        var statuses = new SortedSet<int> { 431, 500, 503 };
        var security = SecurityRequirements.For(metadata);
        var hasBody = operation.RequestBody is not null;
        if (hasBody) statuses.UnionWith([400, 413]);
        // A body parameter makes routing refuse other content types; an endpoint that reads its body itself takes any.
        if (hasBody && !metadata.OfType<DocumentedBodyAttribute>().Any()) statuses.Add(415);
        // The Mimecast route answers its own errors in Mimecast's envelope (declared on the route); the API's routes
        // answer these problem documents.
        if (security.Basic)
        {
            statuses.UnionWith([401, 403, 429]);
            if (hasBody || operation.Parameters is { Count: > 0 }) statuses.Add(422);
            if (!HttpMethods.IsGet(context.Description.HttpMethod ?? "GET")) statuses.Add(409);
        }
        if (operation.Parameters?.Any(p => p.In == ParameterLocation.Query && p.Schema?.Type is { } t && (t.HasFlag(JsonSchemaType.Integer) || t.HasFlag(JsonSchemaType.Number))) == true)
            statuses.Add(400);

        foreach (var status in statuses)
        {
            var key = status.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (!operation.Responses.ContainsKey(key))
                operation.Responses[key] = new OpenApiResponseReference(Known[status].Name, document);
        }

        // Error statuses the endpoint declared without a body type ([ProducesResponseType(404)]) or as ASP.NET Core's
        // ProblemDetails: their body is the service's problem document (with code and traceId).
        foreach (var (key, response) in operation.Responses.ToList())
        {
            if (response is not OpenApiResponse declared || !int.TryParse(key, out var status) || status < 400 || !Known.TryGetValue(status, out var known)) continue;
            if (declared.Content is { Count: > 0 } && !DeclaredAsProblemDetails(metadata, status)) continue;
            operation.Responses[key] = new OpenApiResponseReference(known.Name, document);
        }

        foreach (var header in metadata.OfType<ProducesHeaderAttribute>())
            if (operation.Responses.TryGetValue(header.StatusCode.ToString(System.Globalization.CultureInfo.InvariantCulture), out var r) && r is OpenApiResponse response)
            {
                response.Headers ??= new Dictionary<string, IOpenApiHeader>();
                response.Headers[header.Name] = new OpenApiHeader
                {
                    Description = header.Description, Required = true,
                    Schema = new OpenApiSchema { Type = header.Integer ? JsonSchemaType.Integer : JsonSchemaType.String },
                };
            }

        // Every authenticated answer reports the tenant's rate limit (RateLimitHeaders); a Basic route's success always does.
        if (security.Basic || security.OwnScheme)
            foreach (var (key, r) in operation.Responses)
                if (key.StartsWith('2') && r is OpenApiResponse success)
                {
                    success.Headers ??= new Dictionary<string, IOpenApiHeader>();
                    foreach (var name in RateLimitHeaderNames)
                        success.Headers.TryAdd(name, security.Basic ? new OpenApiHeaderReference(name, document) : new OpenApiHeaderReference(name + OptionalSuffix, document));
                }
    }

    private static bool DeclaredAsProblemDetails(IList<object> metadata, int status) =>
        metadata.OfType<IProducesResponseTypeMetadata>().Select(m => (m.StatusCode, m.Type))
            .Concat(metadata.OfType<IApiResponseMetadataProvider>().Select(m => (m.StatusCode, m.Type)))
            .Any(m => m.StatusCode == status && m.Type is { } t && typeof(Microsoft.AspNetCore.Mvc.ProblemDetails).IsAssignableFrom(t));

    private static readonly string[] RateLimitHeaderNames = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy"];
    private const string OptionalSuffix = ".optional";

    private static readonly Dictionary<string, (string Description, bool Integer)> RateLimitHeaderText = new()
    {
        ["RateLimit-Limit"] = ("Requests per second this tenant may send (Limits:RequestsPerSecondPerTenant).", true),
        ["RateLimit-Remaining"] = ("Requests left in the current second.", true),
        ["RateLimit-Reset"] = ("Seconds until the allowance is whole again (an upper bound).", true),
        ["RateLimit-Policy"] = ("The policy as `{limit};w={window seconds}`.", false),
    };

    /// <summary>
    /// Wolverine advertises every endpoint returning IResult as "200, any object" and "404": keep only the statuses the
    /// endpoint declares (<c>[ProducesResponseType]</c> or <c>.Produces</c>) when it declares any success, and a
    /// Location header on 201 and 202, which point at the resource or the operation to poll.
    /// </summary>
    private static void DropUndeclared(OpenApiOperation operation, IList<object> metadata)
    {
        var declared = metadata.OfType<IApiResponseMetadataProvider>().Select(m => m.StatusCode)
            .Concat(metadata.OfType<IProducesResponseTypeMetadata>().Where(m => m.Type != typeof(IResult) && m.Type != typeof(void)).Select(m => m.StatusCode))
            .ToHashSet();
        if (!declared.Any(s => s is >= 200 and < 300)) return;
        foreach (var key in operation.Responses!.Keys.ToList())
            if (int.TryParse(key, out var status) && !declared.Contains(status))
                operation.Responses.Remove(key);
        foreach (var key in new[] { "201", "202" })
            if (operation.Responses.TryGetValue(key, out var r) && r is OpenApiResponse response)
            {
                response.Headers ??= new Dictionary<string, IOpenApiHeader>();
                response.Headers["Location"] = new OpenApiHeader
                {
                    Description = key == "201" ? "The new resource." : "Where to follow the work accepted: the operation to poll until its status is completed, or the list it shows up in.",
                    Schema = new OpenApiSchema { Type = JsonSchemaType.String, Format = "uri-reference" },
                };
            }
    }

    private static async Task EnsureComponents(OpenApiDocument document, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        document.Components ??= new OpenApiComponents();
        document.Components.Schemas ??= new Dictionary<string, IOpenApiSchema>();
        if (!document.Components.Schemas.ContainsKey(ProblemSchema))
            document.AddComponent(ProblemSchema, await context.GetOrCreateSchemaAsync(typeof(ProblemDocument), null, ct));
        document.Components.Responses ??= new Dictionary<string, IOpenApiResponse>();
        foreach (var (status, (name, description)) in Known)
        {
            if (document.Components.Responses.ContainsKey(name)) continue;
            var response = new OpenApiResponse
            {
                Description = description,
                Content = new Dictionary<string, OpenApiMediaType>
                {
                    [ProblemMediaType] = new() { Schema = new OpenApiSchemaReference(ProblemSchema, document) },
                },
            };
            var headers = new Dictionary<string, IOpenApiHeader>();
            if (status is 429 or 503)
                headers["Retry-After"] = new OpenApiHeader { Description = "Seconds to wait before retrying.", Schema = new OpenApiSchema { Type = JsonSchemaType.Integer } };
            if (status == 401)
                headers["WWW-Authenticate"] = new OpenApiHeader { Description = "The challenge: `Basic realm=\"enrolment\", charset=\"UTF-8\"`.", Schema = new OpenApiSchema { Type = JsonSchemaType.String } };
            if (status is not (401 or 415 or 431))
                foreach (var header in RateLimitHeaderNames) headers[header] = new OpenApiHeaderReference(header + OptionalSuffix, document);
            if (headers.Count > 0) response.Headers = headers;
            document.AddComponent<IOpenApiResponse>(name, response);
        }
        document.Components.Headers ??= new Dictionary<string, IOpenApiHeader>();
        foreach (var (name, (description, integer)) in RateLimitHeaderText)
            foreach (var required in new[] { true, false })
                document.Components.Headers.TryAdd(required ? name : name + OptionalSuffix, new OpenApiHeader
                {
                    Description = required ? description : description + " Sent on every answer to an authenticated request.",
                    Required = required,
                    Schema = new OpenApiSchema { Type = integer ? JsonSchemaType.Integer : JsonSchemaType.String },
                });
    }
}
