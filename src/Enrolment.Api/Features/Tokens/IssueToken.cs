using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Serialization;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Api.Infrastructure.OpenApi;
using Enrolment.Domain;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Wolverine.Http;

namespace Enrolment.Api.Features.Tokens;

/// <summary>The form of an access token request (RFC 6749 §4.4.2), for the OpenAPI document: the endpoint reads the form itself.</summary>
public sealed record TokenRequest(
    [property: JsonPropertyName("grant_type")] string GrantType,
    [property: JsonPropertyName("scope")] string? Scope = null,
    [property: JsonPropertyName("client_id")] string? ClientId = null,
    [property: JsonPropertyName("client_secret")] string? ClientSecret = null);

/// <summary>An access token (RFC 6749 §5.1).</summary>
/// <param name="AccessToken">A JSON Web Token to send as <c>Authorization: Bearer …</c>.</param>
/// <param name="TokenType">Always <c>Bearer</c>.</param>
/// <param name="ExpiresIn">Seconds until the token expires (Auth:AccessTokenLifetime, one hour by default).</param>
/// <param name="Scope">The granted scopes, space-separated.</param>
public sealed record TokenResponse(
    [property: JsonPropertyName("access_token")] string AccessToken,
    [property: JsonPropertyName("token_type")] string TokenType,
    [property: JsonPropertyName("expires_in")] long ExpiresIn,
    [property: JsonPropertyName("scope")] string Scope);

/// <summary>A refused token request (RFC 6749 §5.2).</summary>
/// <param name="Error">invalid_request, invalid_client, unsupported_grant_type or invalid_scope.</param>
/// <param name="ErrorDescription">What was wrong, for a person.</param>
public sealed record TokenError(
    [property: JsonPropertyName("error")] string Error,
    [property: JsonPropertyName("error_description")] string ErrorDescription);

/// <summary>
/// POST /oauth2/token: the client-credentials grant (RFC 6749 §4.4). The client is a tenant (client id = Tenant ID,
/// client secret = one of its API secrets), authenticated by HTTP Basic or by the client_id and client_secret form
/// fields; the token carries the secret's scopes, or the subset asked for. Wrong client credentials count against the
/// caller's address with Basic's failures, so brute force here meets the same 429.
/// </summary>
public static class IssueTokenEndpoint
{
    public const string Path = "/oauth2/token";
    private const string FormMediaType = "application/x-www-form-urlencoded";

    [AllowAnonymous]
    [WolverinePost(Path, OperationId = "issueAccessToken")]
    [Tags("Access tokens")]
    [EndpointSummary("Exchange a tenant's client credentials (Tenant ID and an API secret) for a bearer access token (OAuth 2.0 client-credentials grant).")]
    [DocumentedBody(typeof(TokenRequest), MediaType = FormMediaType)]
    [ProducesResponseType<TokenResponse>(StatusCodes.Status200OK, "application/json")]
    [ProducesResponseType<TokenError>(StatusCodes.Status400BadRequest, "application/json")]
    [ProducesResponseType<TokenError>(StatusCodes.Status401Unauthorized, "application/json")]
    [ProducesResponseType(StatusCodes.Status429TooManyRequests)]
    public static async Task<IResult> Post(HttpContext context, SecretVerifier verifier, AccessTokens tokens, IMemoryCache cache, IOptions<AuthSettings> settings, ILoggerFactory loggers)
    {
        context.Response.Headers.CacheControl = "no-store";
        context.Response.Headers.Pragma = "no-cache";
        var ct = context.RequestAborted;
        var client = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        // A Basic header went through the authentication middleware already, which counted a failure and said whether the
        // client was blocked before this request; the form fields are checked here.
        var basicBlocked = context.Items.TryGetValue(BasicAuthenticationHandler.TooManyKey, out var item) && item is int seconds ? seconds : (int?)null;
        if ((context.Request.Headers.Authorization.Count > 0 ? basicBlocked : ClientFailures.BlockedFor(cache, BasicAuthenticationHandler.FailureCounter, client, settings.Value.MaxFailuresPerClientPerMinute)) is { } retryAfter)
        {
            context.Response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Problems.Make(StatusCodes.Status429TooManyRequests, "too-many-failed-authentications", "Too many requests.",
                $"Too many failed authentications from this client. Try again in {retryAfter} seconds.");
        }

        if (!context.Request.HasFormContentType || !MediaTypeHeaderValue.TryParse(context.Request.ContentType, out var mediaType) || !string.Equals(mediaType.MediaType, FormMediaType, StringComparison.OrdinalIgnoreCase))
            return Error(400, "invalid_request", $"Send the request as {FormMediaType} (RFC 6749 §4.4.2).");
        IFormCollection form;
        try { form = await context.Request.ReadFormAsync(ct); }
        catch (Exception e) when (e is InvalidDataException or IOException or BadHttpRequestException) { return Error(400, "invalid_request", "The form body could not be read."); }

        if (form.FirstOrDefault(f => f.Value.Count > 1).Key is { } repeated)
            return Error(400, "invalid_request", $"The parameter '{repeated}' is given more than once.");
        var grantType = form["grant_type"].ToString();
        if (grantType.Length == 0) return Error(400, "invalid_request", "grant_type is required: client_credentials.");
        if (grantType != "client_credentials") return Error(400, "unsupported_grant_type", "Only the client_credentials grant is supported.");

        // The client: HTTP Basic (client id and secret form-urlencoded, RFC 6749 §2.3.1) or the form fields, not both.
        var header = context.Request.Headers.Authorization.ToString();
        var formId = form["client_id"].ToString();
        var formSecret = form["client_secret"].ToString();
        string? clientId, clientSecret;
        var usedBasic = header.Length > 0;
        if (usedBasic)
        {
            if (formSecret.Length > 0) return Error(400, "invalid_request", "Authenticate the client one way: HTTP Basic or client_secret, not both.");
            (clientId, clientSecret) = ParseBasic(header);
            if (clientId is not null && formId.Length > 0 && formId != clientId) return Error(400, "invalid_request", "client_id differs from the HTTP Basic client.");
        }
        else if (formId.Length > 0 || formSecret.Length > 0)
        {
            (clientId, clientSecret) = (formId, formSecret);
        }
        else
        {
            context.Response.Headers.WWWAuthenticate = "Basic realm=\"enrolment\", charset=\"UTF-8\"";
            return Error(401, "invalid_client", "Authenticate the client: HTTP Basic (Tenant ID and secret) or the client_id and client_secret form fields.");
        }

        var verified = clientId is { } id && Ids.IsValidTenantId(id) && clientSecret is { Length: > 0 and <= 256 } s
            ? await verifier.Verify(id, s, ct)
            : null;
        if (verified is null)
        {
            // A Basic header was already checked, and a failure counted, by the authentication middleware that runs on
            // every request: count only the form fields here, so one wrong guess counts once.
            if (!usedBasic)
            {
                ClientFailures.Record(cache, BasicAuthenticationHandler.FailureCounter, client);
                loggers.CreateLogger(typeof(IssueTokenEndpoint)).LogWarning("Authentication failed for a request from {Client}: {Reason}", client, "wrong client credentials in the token request's form");
            }
            if (usedBasic) context.Response.Headers.WWWAuthenticate = "Basic realm=\"enrolment\", charset=\"UTF-8\"";
            return Error(401, "invalid_client", "Unknown client or wrong client secret.");
        }

        var asked = form["scope"].ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries).Distinct(StringComparer.Ordinal).ToArray();
        var refused = asked.Where(scope => !Scopes.CanRequest(verified.Scopes, scope)).ToArray();
        if (refused.Length > 0)
            return Error(400, "invalid_scope", $"The secret does not hold {string.Join(", ", refused.Take(5))}; it may ask for {string.Join(", ", verified.Scopes)} or a subset.");
        var granted = asked.Length > 0 ? asked : verified.Scopes;

        var token = tokens.Issue(verified, granted);
        return Results.Json(new TokenResponse(token, "Bearer", (long)tokens.Lifetime.TotalSeconds, string.Join(' ', granted)), Json.Options, "application/json");
    }

    private static (string? Id, string? Secret) ParseBasic(string header)
    {
        if (!AuthenticationHeaderValue.TryParse(header, out var value) || !string.Equals(value.Scheme, "Basic", StringComparison.OrdinalIgnoreCase) || value.Parameter is not { Length: > 0 and <= 1024 } parameter)
            return (null, null);
        try
        {
            var decoded = new UTF8Encoding(false, true).GetString(Convert.FromBase64String(parameter));
            var colon = decoded.IndexOf(':');
            if (colon <= 0) return (null, null);
            return (Uri.UnescapeDataString(decoded[..colon].Replace('+', ' ')), Uri.UnescapeDataString(decoded[(colon + 1)..].Replace('+', ' ')));
        }
        catch (Exception e) when (e is FormatException or ArgumentException) { return (null, null); }
    }

    private static IResult Error(int status, string error, string description) =>
        Results.Json(new TokenError(error, description), Json.Options, "application/json", status);
}
