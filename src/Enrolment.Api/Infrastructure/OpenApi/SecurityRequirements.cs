using Enrolment.Api.Infrastructure.Auth;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Enrolment.Api.Infrastructure.OpenApi;

/// <summary>
/// Each operation's security, read from the authorization metadata the endpoint really runs with: a Basic route
/// needs the scope named by its policy (policy "read" → scope "api/read"; "api/all" grants every scope), the
/// route whose policy names an authentication scheme of its own (Mimecast's MC signature) is documented by the area that
/// owns that scheme. So a route added with <c>[Authorize(Policy = …)]</c> is documented right.
/// </summary>
internal sealed class SecurityRequirements : IOpenApiOperationTransformer
{
    public const string BasicScheme = "basic";
    public const string BearerScheme = "bearer";
    public const string OAuth2Scheme = "oauth2";

    /// <summary><paramref name="OwnScheme"/>: the route authenticates with a scheme of its own, which its area documents.</summary>
    public sealed record Needs(bool Basic, bool OwnScheme, IReadOnlyList<string> Scopes);

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
        // The API's own routes name no scheme (Basic is the default, Bearer forwarded from it); a route that names one has its own.
        if (schemes.Count > 0) return new Needs(false, true, []);
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
        else if (needs.OwnScheme)
        {
            // Documented by the area that owns the scheme (an operation transformer of its own).
        }
        else
        {
            operation.Security = [];
        }
        return Task.CompletedTask;
    }

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
    };
}
