using System.Net.Http.Headers;
using System.Security.Claims;
using System.Text;
using System.Text.Encodings.Web;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace Enrolment.Api.Infrastructure.Auth;

public sealed class AuthSettings
{
    /// <summary>How long a verified secret is trusted without asking the database; bounds how long a revoked secret still works.</summary>
    public int CacheSeconds { get; set; } = 30;

    /// <summary>Failed authentications one client (IP address) may make per minute before it gets 429.</summary>
    public int MaxFailuresPerClientPerMinute { get; set; } = 10;

    /// <summary>How long an access token from POST /oauth2/token is valid (its expires_in).</summary>
    public TimeSpan AccessTokenLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// The key that signs access tokens (HMAC-SHA256): the Base64 of 32 random bytes, the same on every node. The
    /// published development default is refused outside Development.
    /// </summary>
    public string TokenSigningKey { get; set; } = "";

    /// <summary>The key being rotated away from: tokens it signed are still accepted until they expire. Empty otherwise.</summary>
    public string PreviousTokenSigningKey { get; set; } = "";
}

/// <summary>
/// HTTP Basic: username = Tenant ID, password = a secret issued by `tenants add`. A verified secret is cached for
/// <see cref="AuthSettings.CacheSeconds"/>, so authentication costs no database round trip per request.
/// Repeated failures are counted per client address, not per tenant, so a stranger cannot lock a tenant out.
/// </summary>
public sealed class BasicAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    SecretVerifier verifier,
    IMemoryCache cache,
    IOptions<AuthSettings> settings) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Basic";
    public const string TenantClaim = "tenant";
    public const string ScopeClaim = "scope";
    /// <summary>The id of the secret that authenticated the request (never the secret): events record it as their actor.</summary>
    public const string SecretIdClaim = "secret-id";
    /// <summary>The HttpContext item set when this client was refused as blocked (its value: seconds until it may retry).</summary>
    public const string TooManyKey = "auth.too-many";
    /// <summary>Failed authentications are counted per client across every way of presenting a secret (Basic, bearer, the token endpoint).</summary>
    public const string FailureCounter = "secret";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!Request.Headers.TryGetValue("Authorization", out var header) || header.Count == 0)
            return AuthenticateResult.NoResult();

        var client = Context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        if (ClientFailures.BlockedFor(cache, FailureCounter, client, settings.Value.MaxFailuresPerClientPerMinute) is { } retryAfter)
        {
            Context.Items[TooManyKey] = retryAfter;
            return AuthenticateResult.Fail("Too many failed authentications from this client.");
        }

        var result = await Verify(header.ToString());
        if (result.Succeeded) return result;

        ClientFailures.Record(cache, FailureCounter, client);
        Logger.LogWarning("Authentication failed for a request from {Client}: {Reason}", client, result.Failure?.Message);
        return result;
    }

    private async Task<AuthenticateResult> Verify(string header)
    {
        if (!AuthenticationHeaderValue.TryParse(header, out var value)
            || !string.Equals(value.Scheme, SchemeName, StringComparison.OrdinalIgnoreCase)
            || string.IsNullOrEmpty(value.Parameter) || value.Parameter.Length > 512)
            return AuthenticateResult.Fail("The Authorization header is not HTTP Basic.");

        string decoded;
        try { decoded = new UTF8Encoding(false, true).GetString(Convert.FromBase64String(value.Parameter)); }
        catch (Exception e) when (e is FormatException or ArgumentException) { return AuthenticateResult.Fail("The Basic credentials are not valid Base64 UTF-8."); }

        var colon = decoded.IndexOf(':');
        if (colon <= 0) return AuthenticateResult.Fail("The Basic credentials have no 'tenant:secret' form.");
        var tenantId = decoded[..colon];
        var secret = decoded[(colon + 1)..];
        if (!Ids.IsValidTenantId(tenantId)) return AuthenticateResult.Fail("The username is not a valid Tenant ID.");
        if (secret.Length is 0 or > 256) return AuthenticateResult.Fail("The password is empty or too long.");

        var verified = await verifier.Verify(tenantId, secret, Context.RequestAborted);
        if (verified is null) return AuthenticateResult.Fail("Unknown tenant or wrong secret.");
        var principal = CredentialPrincipal.Create(tenantId, verified.SecretId, verified.Scopes, CredentialPrincipal.BasicKind, SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));
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
        Response.Headers.WWWAuthenticate = "Basic realm=\"enrolment\", charset=\"UTF-8\"";
        await Problems.Make(StatusCodes.Status401Unauthorized, "unauthenticated", "Authentication required.",
            "Send HTTP Basic credentials: the Tenant ID as username and an API secret as password.").ExecuteAsync(Context);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        Problems.Make(StatusCodes.Status403Forbidden, "insufficient-scope", "Forbidden.",
            "The secret is valid but lacks the scope this route needs (api/read for reads, api/write for writes, api/webhooks for /webhooks, or api/all).").ExecuteAsync(Context);
}

public static class AuthPolicies
{
    public const string Read = "read";
    public const string Write = "write";
    public const string Webhooks = "webhooks";
    public const string Scim = "scim";
}
