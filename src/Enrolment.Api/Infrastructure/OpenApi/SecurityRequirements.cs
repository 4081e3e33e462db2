using Enrolment.Api.Features.Mimecast;
using Enrolment.Api.Infrastructure.Auth;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Enrolment.Api.Infrastructure.OpenApi;

/// <summary>
/// Each operation's security, read from the authorization metadata the endpoint really runs with: a Basic route
/// needs the scope named by its policy (policy "read" → scope "api/read"; "api/all" grants every scope), the
/// Mimecast route needs the MC signature. So a route added with <c>[Authorize(Policy = …)]</c> is documented right.
/// </summary>
internal sealed class SecurityRequirements : IOpenApiOperationTransformer
{
    public const string BasicScheme = "basic";
    public const string MimecastScheme = "mimecast";
    public const string BearerScheme = "bearer";
    public const string OAuth2Scheme = "oauth2";

    public sealed record Needs(bool Basic, bool Mimecast, IReadOnlyList<string> Scopes);

    public static Needs For(IEnumerable<object> metadata)
    {
        var items = metadata.ToList();
        if (items.OfType<IAllowAnonymous>().Any()) return new Needs(false, false, []);
        var policies = items.OfType<AuthorizationPolicy>().ToList();
        var authorize = items.OfType<IAuthorizeData>().ToList();
        if (policies.Count == 0 && authorize.Count == 0) return new Needs(false, false, []);

        var schemes = policies.SelectMany(p => p.AuthenticationSchemes)
            .Concat(authorize.SelectMany(a => (a.AuthenticationSchemes ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)))
            .ToHashSet(StringComparer.Ordinal);
        if (schemes.Contains(MimecastAuthenticationHandler.SchemeName)) return new Needs(false, true, []);
        var scopes = authorize.Select(a => a.Policy).OfType<string>().Select(p => "api/" + p).Distinct().ToList();
        return new Needs(true, false, scopes);
    }

    public Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var document = context.Document!;
        var needs = For(context.Description.ActionDescriptor.EndpointMetadata);
        if (needs.Basic)
        {
            // Basic, or an access token from POST /oauth2/token carrying the same scope.
            operation.Security =
            [
                new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(BasicScheme, document)] = needs.Scopes.ToList() },
                new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(OAuth2Scheme, document)] = needs.Scopes.ToList() },
            ];
            if (needs.Scopes.Count > 0 && operation.Description is not null)
                operation.Description = $"{operation.Description}\n\nScope: `{string.Join("`, `", needs.Scopes)}` (or `{Scopes.All}`).".TrimStart();
        }
        else if (needs.Mimecast)
        {
            operation.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(MimecastScheme, document)] = [] }];
            operation.Parameters ??= [];
            foreach (var (name, description, example) in MimecastHeaders)
                if (!operation.Parameters.Any(p => p.Name == name && p.In == ParameterLocation.Header))
                    operation.Parameters.Add(new OpenApiParameter
                    {
                        Name = name, In = ParameterLocation.Header, Required = true, Description = description,
                        Schema = new OpenApiSchema { Type = JsonSchemaType.String }, Example = example,
                    });
        }
        else
        {
            operation.Security = [];
        }
        return Task.CompletedTask;
    }

    private static readonly (string Name, string Description, string Example)[] MimecastHeaders =
    [
        ("x-mc-date", "The request's date, RFC 1123, within ±15 minutes of the service clock; part of the signed text.", "Tue, 24 Nov 2015 12:50:11 UTC"),
        ("x-mc-req-id", "A unique id for this request (a fresh GUID); a repeated id is refused. Part of the signed text.", "8f6e2a5c-3b1d-4c9e-9a7f-2d4b6e8f0a1c"),
        ("x-mc-app-id", "The application id issued with the access key.", "enrolment-app"),
    ];

    public static Dictionary<string, IOpenApiSecurityScheme> Schemes() => new()
    {
        [BasicScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "basic",
            Description = "HTTP Basic: username = the Tenant ID (e.g. `eu-west-2_AbcdEfghI`), password = an API secret issued for that tenant " +
                          "(`./build/run.sh tenants add <tenantId>`). A secret carries the scopes `api/read`, `api/write`, `api/webhooks` or `api/all`.",
        },
        [BearerScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "JWT",
            Description = "`Authorization: Bearer <token>`: an access token from `POST /oauth2/token` (a JWT, valid `expires_in` seconds, with the scopes it was " +
                          "granted), on every route that takes Basic; on `/scim/v2` also a tenant secret with the `api/scim` scope (or `api/all`) as a static token, " +
                          "which is what Entra ID's \"Secret Token\" and Okta's \"HTTP Header\" provisioning send.",
        },
        [OAuth2Scheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.OAuth2,
            Description = "OAuth 2.0 client credentials (RFC 6749 §4.4): client id = the Tenant ID, client secret = an API secret; the access token is sent as a bearer token.",
            Flows = new OpenApiOAuthFlows
            {
                ClientCredentials = new OpenApiOAuthFlow
                {
                    TokenUrl = new Uri("/oauth2/token", UriKind.Relative),
                    Scopes = new Dictionary<string, string>
                    {
                        [Scopes.Read] = "Read enrolments, assignments, summaries, the change feed and the audit export.",
                        [Scopes.Write] = "Create and change assignments, audiences, content, completions and enrolments.",
                        [Scopes.Webhooks] = "Manage webhook subscriptions.",
                        [Scopes.Scim] = "SCIM 2.0 provisioning under /scim/v2.",
                        [Scopes.All] = "Every scope above.",
                    },
                },
            },
        },
        [MimecastScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.ApiKey,
            In = ParameterLocation.Header,
            Name = "Authorization",
            Description = "Mimecast API 1.0 request signing: `Authorization: MC {accessKey}:{signature}`, where signature = " +
                          "Base64(HMAC-SHA1(Base64Decode(secretKey), \"{x-mc-date}:{x-mc-req-id}:{path}:{appKey}\")), with the `x-mc-date`, " +
                          "`x-mc-req-id` and `x-mc-app-id` headers. Keys: `./build/run.sh tenants mimecast-key <tenantId>`; see docs/mimecast.md.",
        },
    };
}
