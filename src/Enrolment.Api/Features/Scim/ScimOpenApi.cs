using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Enrolment.Api.Infrastructure.OpenApi;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using NodaTime;

namespace Enrolment.Api.Features.Scim;

// The shapes of SCIM's resources and messages, for the OpenAPI document (the endpoints write JSON nodes, so that the
// attributes a provider sends come back as sent). Resources allow attributes beyond those named: extensions, roles, ...

/// <summary>A SCIM User (RFC 7643 §4.1). Attributes not named here are kept and returned as the provider sent them.</summary>
[ScimOpen]
public sealed record ScimUserResource(
    string[] Schemas,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Id,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ExternalId,
    string UserName,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? Active,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] ScimName? Name,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? DisplayName,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] ScimMultiValue[]? Emails,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] ScimMeta? Meta);

[ScimOpen]
public sealed record ScimName(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Formatted,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? FamilyName,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? GivenName);

/// <summary>One value of a multi-valued attribute (emails, phoneNumbers, ...).</summary>
[ScimOpen]
public sealed record ScimMultiValue(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Value,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Type,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? Primary);

/// <summary>A resource's metadata (RFC 7643 §3.1).</summary>
public sealed record ScimMeta(string ResourceType, Instant Created, Instant LastModified, string Location);

/// <summary>A SCIM Group (RFC 7643 §4.2): an audience. Its id is the audience id.</summary>
[ScimOpen]
public sealed record ScimGroupResource(
    string[] Schemas,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Id,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ExternalId,
    string DisplayName,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] ScimMember[]? Members,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] ScimMeta? Meta);

/// <summary>A member of a group: the user id as value, with the user's userName as display when the user was provisioned.</summary>
[ScimOpen]
public sealed record ScimMember(
    string Value,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Display,
    [property: JsonPropertyName("$ref"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Ref,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Type);

/// <summary>A page of users (RFC 7644 §3.4.2).</summary>
public sealed record ScimUserList(string[] Schemas, int TotalResults, int StartIndex, int ItemsPerPage,
    [property: JsonPropertyName("Resources")] ScimUserResource[] Resources);

/// <summary>A page of groups (RFC 7644 §3.4.2).</summary>
public sealed record ScimGroupList(string[] Schemas, int TotalResults, int StartIndex, int ItemsPerPage,
    [property: JsonPropertyName("Resources")] ScimGroupResource[] Resources);

/// <summary>A PATCH (RFC 7644 §3.5.2). Attribute names and op names in any case.</summary>
public sealed record ScimPatchRequest([property: JsonPropertyName("Operations")] ScimPatchOperation[] Operations, string[]? Schemas = null);

/// <summary>add, replace or remove (any case); without a path the value is an object of attributes.</summary>
public sealed record ScimPatchOperation(string Op,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Path = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] JsonNode? Value = null);

/// <summary>A SCIM error (RFC 7644 §3.12).</summary>
/// <param name="Status">The HTTP status, as a string.</param>
/// <param name="ScimType">invalidFilter, invalidSyntax, invalidValue, invalidPath, noTarget, uniqueness, ...</param>
public sealed record ScimError(string[] Schemas, string Status,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ScimType, string Detail);

/// <summary>A SCIM resource type allows attributes beyond the ones its schema names.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class ScimOpenAttribute : Attribute;

/// <summary>The body a SCIM route reads (itself): the schema, as application/scim+json and application/json.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class ScimBodyAttribute(Type schema) : Attribute
{
    public Type Schema { get; } = schema;
}

/// <summary>A SCIM route's success answer (<paramref name="schema"/> null: no body) and the error statuses of its own.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class ScimAnswerAttribute(Type? schema, int status, params int[] errors) : Attribute
{
    public Type? Schema { get; } = schema;
    public int Status { get; } = status;
    public int[] Errors { get; } = errors;
}

/// <summary>
/// Documents the SCIM routes as they answer: both media types, SCIM error documents instead of problem documents for
/// every error (also the ones the infrastructure gives: 401, 403, 429, 413, 415, 431, 500, 503), and bearer tokens
/// beside Basic. Runs after the service's own transformers and replaces what they said of these routes.
/// </summary>
internal static class ScimOpenApi
{
    public static readonly string[] MediaTypes = [ScimWire.MediaType, "application/json"];

    private static readonly Dictionary<int, string> Descriptions = new()
    {
        [400] = "A filter, syntax or value the service cannot take (scimType invalidFilter, invalidSyntax, invalidValue, invalidPath or noTarget).",
        [401] = "No, malformed or wrong credentials: a bearer token (a secret with the api/scim scope, or an access token) or HTTP Basic.",
        [403] = "Valid credentials without the api/scim (or api/all) scope.",
        [404] = "No such resource in this tenant.",
        [409] = "userName or displayName taken, or an id that exists already (scimType uniqueness), or a lost race: retry.",
        [413] = "The body exceeds the service's limit.",
        [415] = "The body is neither application/scim+json nor application/json.",
        [429] = "Too many failed authentications from this client, or the tenant's rate limit; retry after Retry-After seconds.",
        [431] = "The request headers are too large.",
        [500] = "An unexpected fault.",
        [503] = "The database is not reachable right now; retry after Retry-After seconds.",
    };

    public static void Schema(OpenApiSchema schema, OpenApiSchemaTransformerContext context)
    {
        if (context.JsonTypeInfo.Type.GetCustomAttributes(typeof(ScimOpenAttribute), false).Length > 0)
            schema.AdditionalProperties = new OpenApiSchema();
    }

    public static async Task Operation(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        var metadata = context.Description.ActionDescriptor.EndpointMetadata;
        if (metadata.OfType<ScimAnswerAttribute>().FirstOrDefault() is not { } answer) return;
        var document = context.Document!;

        var body = metadata.OfType<ScimBodyAttribute>().FirstOrDefault();
        if (body is not null)
        {
            var schema = await context.GetOrCreateSchemaAsync(body.Schema, null, ct);
            operation.RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Content = MediaTypes.ToDictionary(m => m, _ => new OpenApiMediaType { Schema = schema }),
            };
        }

        var old = operation.Responses ?? new OpenApiResponses();
        var key = answer.Status.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var success = old.TryGetValue(key, out var existing) && existing is OpenApiResponse r ? r : new OpenApiResponse();
        success.Description = answer.Status switch { 201 => "Created.", 204 => "Done; no body.", _ => "OK." };
        if (answer.Schema is { } type)
        {
            var schema = await context.GetOrCreateSchemaAsync(type, null, ct);
            success.Content = MediaTypes.ToDictionary(m => m, _ => new OpenApiMediaType { Schema = schema });
        }
        else success.Content = null;
        if (answer.Status == 201)
        {
            success.Headers ??= new Dictionary<string, IOpenApiHeader>();
            success.Headers["Location"] = new OpenApiHeader { Description = "The new resource.", Schema = new OpenApiSchema { Type = JsonSchemaType.String, Format = "uri" } };
        }
        operation.Responses = new OpenApiResponses { [key] = success };

        var errorSchema = await context.GetOrCreateSchemaAsync(typeof(ScimError), null, ct);
        var errors = new SortedSet<int>(answer.Errors) { 401, 403, 429, 431, 500, 503 };
        if (body is not null) errors.UnionWith([400, 413, 415]);
        if (operation.Parameters?.Any(p => p.In == ParameterLocation.Query && p.Schema?.Type is { } t && t.HasFlag(JsonSchemaType.Integer)) == true) errors.Add(400);
        foreach (var status in errors)
        {
            var error = new OpenApiResponse
            {
                Description = Descriptions[status],
                Content = MediaTypes.ToDictionary(m => m, _ => new OpenApiMediaType { Schema = errorSchema }),
            };
            if (status is 429 or 503)
                error.Headers = new Dictionary<string, IOpenApiHeader> { ["Retry-After"] = new OpenApiHeader { Description = "Seconds to wait before retrying.", Schema = new OpenApiSchema { Type = JsonSchemaType.Integer } } };
            if (status == 401)
                error.Headers = new Dictionary<string, IOpenApiHeader> { ["WWW-Authenticate"] = new OpenApiHeader { Description = "The challenge: `Bearer realm=\"enrolment\"` (with `error=\"invalid_token\"` for a refused token) or `Basic …`.", Schema = new OpenApiSchema { Type = JsonSchemaType.String } } };
            operation.Responses[status.ToString(System.Globalization.CultureInfo.InvariantCulture)] = error;
        }

        var scopes = new List<string> { Infrastructure.Auth.Scopes.Scim };
        operation.Security =
        [
            new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(SecurityRequirements.BearerScheme, document)] = scopes },
            new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(SecurityRequirements.OAuth2Scheme, document)] = scopes },
            new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(SecurityRequirements.BasicScheme, document)] = scopes },
        ];
    }
}
