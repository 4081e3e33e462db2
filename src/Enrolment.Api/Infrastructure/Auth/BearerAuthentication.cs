using System.Net.Http.Headers;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace Enrolment.Api.Infrastructure.Auth;

/// <summary>
/// <c>Authorization: Bearer &lt;token&gt;</c> (RFC 6750), in two forms:
/// <list type="bullet">
/// <item>an access token from POST /oauth2/token, on every route that takes Basic, with the token's scopes, as long as
/// it has not expired and the secret it came from is active (<see cref="AccessTokens"/>);</item>
/// <item>a tenant secret with scope api/scim (or api/all) as a static token, on /scim/v2 only: what Entra ID's "Secret
/// Token" and Okta's "HTTP Header" provisioning send. Anywhere else it is refused, so a provisioning secret pasted into an
/// identity provider opens nothing but SCIM.</item>
/// </list>
/// Failures count against the client with Basic's (<see cref="ClientFailures"/>): brute force meets 429 either way.
/// </summary>
public sealed class BearerAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    AccessTokens tokens,
    SecretVerifier verifier,
    IMemoryCache cache,
    IOptions<AuthSettings> settings) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Bearer";
    /// <summary>Where a tenant secret is accepted as a static bearer token.</summary>
    public const string StaticTokenPath = "/scim/v2";
    private const string TooManyKey = "auth.too-many";
    private const string ErrorKey = "auth.bearer-error";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!Request.Headers.TryGetValue("Authorization", out var header) || header.Count == 0)
            return AuthenticateResult.NoResult();

        var client = Context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        if (ClientFailures.BlockedFor(cache, BasicAuthenticationHandler.FailureCounter, client, settings.Value.MaxFailuresPerClientPerMinute) is { } retryAfter)
        {
            Context.Items[TooManyKey] = retryAfter;
            return AuthenticateResult.Fail("Too many failed authentications from this client.");
        }

        var result = await Verify(header.ToString());
        if (result.Succeeded) return result;
        Context.Items[ErrorKey] = true;
        ClientFailures.Record(cache, BasicAuthenticationHandler.FailureCounter, client);
        Logger.LogWarning("Authentication failed for a request from {Client}: {Reason}", client, result.Failure?.Message);
        return result;
    }

    private async Task<AuthenticateResult> Verify(string header)
    {
        if (!AuthenticationHeaderValue.TryParse(header, out var value)
            || !string.Equals(value.Scheme, SchemeName, StringComparison.OrdinalIgnoreCase)
            || string.IsNullOrEmpty(value.Parameter) || value.Parameter.Length > 4096)
            return AuthenticateResult.Fail("The Authorization header is not a bearer token.");
        var token = value.Parameter;

        if (AccessTokens.LooksLikeToken(token))
        {
            if (await tokens.Read(token) is not { } read) return AuthenticateResult.Fail("The access token is malformed, expired or not signed by this service.");
            // The secret must still be active: revoking it ends its tokens within Auth:CacheSeconds.
            if (await verifier.ActiveScopes(read.TenantId, read.SecretId, Context.RequestAborted) is not { } still)
                return AuthenticateResult.Fail("The secret this access token was issued from has been revoked.");
            // A token never grants more than its secret holds now.
            var scopes = read.Scopes.Where(s => Scopes.Grants(still, s)).ToArray();
            return AuthenticateResult.Success(new AuthenticationTicket(
                CredentialPrincipal.Create(read.TenantId, read.SecretId, scopes, CredentialPrincipal.AccessTokenKind, SchemeName), SchemeName));
        }

        if (!Request.Path.StartsWithSegments(StaticTokenPath, StringComparison.OrdinalIgnoreCase))
            return AuthenticateResult.Fail("A tenant secret is a bearer token only on /scim/v2; elsewhere send it with HTTP Basic, or exchange it at POST /oauth2/token.");
        if (token.Length > 256) return AuthenticateResult.Fail("The bearer token is too long.");
        var secret = await verifier.FindWithoutTenant(token, Context.RequestAborted);
        if (secret is null) return AuthenticateResult.Fail("Unknown bearer token.");
        if (!Scopes.Grants(secret.Scopes, Scopes.Scim)) return AuthenticateResult.Fail("A tenant secret used as a bearer token must hold the api/scim (or api/all) scope.");
        return AuthenticateResult.Success(new AuthenticationTicket(
            CredentialPrincipal.Create(secret.TenantId, secret.SecretId, secret.Scopes, CredentialPrincipal.StaticBearerKind, SchemeName), SchemeName));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        if (Context.Items.TryGetValue(TooManyKey, out var blocked) && blocked is int retryAfter)
        {
            Response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await Problems.Make(StatusCodes.Status429TooManyRequests, "too-many-failed-authentications", "Too many requests.",
                $"Too many failed authentications from this client. Try again in {retryAfter} seconds.").ExecuteAsync(Context);
            return;
        }
        var bearer = Context.Items.ContainsKey(ErrorKey) ? "Bearer realm=\"enrolment\", error=\"invalid_token\"" : "Bearer realm=\"enrolment\"";
        // Both ways in are offered; Basic first where it always was (the API's routes), bearer first on /scim/v2.
        const string basic = "Basic realm=\"enrolment\", charset=\"UTF-8\"";
        Response.Headers.WWWAuthenticate = Request.Path.StartsWithSegments(StaticTokenPath, StringComparison.OrdinalIgnoreCase)
            ? new Microsoft.Extensions.Primitives.StringValues([bearer, basic])
            : new Microsoft.Extensions.Primitives.StringValues([basic, bearer]);
        await Problems.Make(StatusCodes.Status401Unauthorized, "unauthenticated", "Authentication required.",
            "The bearer token is not valid: send an access token from POST /oauth2/token (or, on /scim/v2, a secret with the api/scim scope), or HTTP Basic credentials.").ExecuteAsync(Context);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = "Bearer realm=\"enrolment\", error=\"insufficient_scope\"";
        return Problems.Make(StatusCodes.Status403Forbidden, "insufficient-scope", "Forbidden.",
            "The token is valid but lacks the scope this route needs (api/read for reads, api/write for writes, api/webhooks for /webhooks, api/scim for /scim/v2, or api/all).").ExecuteAsync(Context);
    }
}

/// <summary>
/// The default scheme: sends each request to the handler its Authorization header names, so that every route that
/// takes Basic takes a bearer token as well, with one set of policies. Without a header, the challenge is Basic's,
/// except on /scim/v2, where identity providers expect a bearer challenge.
/// </summary>
public static class CredentialSchemes
{
    public const string SchemeName = "Credentials";

    public static string Select(HttpContext context)
    {
        var header = context.Request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return BearerAuthenticationHandler.SchemeName;
        if (header.Length == 0 && context.Request.Path.StartsWithSegments(BearerAuthenticationHandler.StaticTokenPath, StringComparison.OrdinalIgnoreCase))
            return BearerAuthenticationHandler.SchemeName;
        return BasicAuthenticationHandler.SchemeName;
    }
}
