using System.Net;
using System.Text.Json.Nodes;
using Enrolment.Api.Infrastructure.Auth;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using static Enrolment.Api.Tests.Identity;

namespace Enrolment.Api.Tests;

/// <summary>
/// POST /oauth2/token (RFC 6749 §4.4, errors as §5.2) and bearer access tokens on the routes that take Basic: scopes,
/// expiry, death with the secret, and where a tenant secret works as a static bearer token (on /scim/v2 only).
/// </summary>
public sealed class TokenTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private const string Read = "/users/tok-u1/enrolments";

    private static string FormOf(params (string Name, string Value)[] fields) =>
        string.Join('&', fields.Select(f => Uri.EscapeDataString(f.Name) + "=" + Uri.EscapeDataString(f.Value)));

    private Task<ApiResponse> Token(string form, string? authorization = null, string contentType = Form, IPAddress? ip = null) =>
        Host.Call("POST", "/oauth2/token", authorization, form, contentType, clientIp: ip ?? IPAddress.Parse(Scenarios.RandomIp()));

    private async Task<(string Token, JsonNode Body)> TokenFor(string secret, string? scope = null)
    {
        var fields = new List<(string, string)> { ("grant_type", "client_credentials") };
        if (scope is not null) fields.Add(("scope", scope));
        var response = (await Token(FormOf([.. fields]), Basic(TenantId, secret))).AssertStatus(200);
        return (response.Json.Str("access_token"), response.Json);
    }

    private static JsonNode AssertOAuthError(ApiResponse response, int status, string error)
    {
        Assert.True(response.Status == status, $"Expected {status} {error}, got {response}");
        Assert.StartsWith("application/json", response.ContentType ?? "");
        Assert.Equal(error, response.Json.Str("error"));
        Assert.False(string.IsNullOrEmpty(response.Json.Str("error_description")));
        Assert.Equal("no-store", response.Headers.CacheControl.ToString());
        return response.Json;
    }

    [Fact]
    public async Task Client_credentials_by_Basic_give_a_bearer_token_that_works_on_the_routes_that_take_Basic()
    {
        var response = (await Token(FormOf(("grant_type", "client_credentials")), Basic(TenantId, AllSecret))).AssertStatus(200);
        Assert.Equal("no-store", response.Headers.CacheControl.ToString());
        Assert.StartsWith("application/json", response.ContentType);
        Assert.Equal("Bearer", response.Json.Str("token_type"));
        Assert.Equal(3600, response.Json["expires_in"]!.GetValue<long>());
        Assert.Equal(Scopes.All, response.Json.Str("scope"));
        var token = response.Json.Str("access_token");
        Assert.DoesNotContain(AllSecret, token);

        (await Get(Read, "Bearer " + token)).AssertStatus(200);
        (await Put("/content/tok-c1", new { title = "Tokens" }, "Bearer " + token)).AssertStatus(200);
        (await Get("/webhooks", "Bearer " + token)).AssertStatus(200);
        // The events the token's requests write name the secret it came from, as Basic's do.
        (await Get("/content/tok-c1", "Bearer " + token)).AssertStatus(200);
    }

    [Fact]
    public async Task Client_credentials_in_the_form_fields_work_too()
    {
        var response = (await Token(FormOf(("grant_type", "client_credentials"), ("client_id", TenantId), ("client_secret", ReadSecret)))).AssertStatus(200);
        Assert.Equal(Scopes.Read, response.Json.Str("scope"));
        (await Get(Read, "Bearer " + response.Json.Str("access_token"))).AssertStatus(200);
    }

    [Fact]
    public async Task A_token_carries_the_scopes_asked_for_and_no_more()
    {
        var (readOnly, body) = await TokenFor(AllSecret, Scopes.Read);
        Assert.Equal(Scopes.Read, body.Str("scope"));
        (await Get(Read, "Bearer " + readOnly)).AssertStatus(200);
        (await Put("/content/tok-c2", new { title = "No" }, "Bearer " + readOnly)).AssertProblem(403);

        var (two, both) = await TokenFor(AllSecret, $"{Scopes.Read} {Scopes.Write}");
        Assert.Equal($"{Scopes.Read} {Scopes.Write}", both.Str("scope"));
        (await Put("/content/tok-c2", new { title = "Yes" }, "Bearer " + two)).AssertStatus(200);

        // A read secret cannot ask for write, nor for a scope that does not exist.
        AssertOAuthError(await Token(FormOf(("grant_type", "client_credentials"), ("scope", Scopes.Write)), Basic(TenantId, ReadSecret)), 400, "invalid_scope");
        AssertOAuthError(await Token(FormOf(("grant_type", "client_credentials"), ("scope", "api/everything")), Basic(TenantId, AllSecret)), 400, "invalid_scope");
    }

    [Fact]
    public async Task Wrong_or_missing_client_credentials_are_invalid_client_with_a_401()
    {
        var wrong = AssertOAuthError(await Token(FormOf(("grant_type", "client_credentials")), Basic(TenantId, AllSecret + "x")), 401, "invalid_client");
        Assert.DoesNotContain(AllSecret, wrong.ToJsonString());
        var viaBasic = await Token(FormOf(("grant_type", "client_credentials")), Basic(TenantId, "es_wrong"));
        Assert.StartsWith("Basic", viaBasic.Headers.WWWAuthenticate.ToString());
        AssertOAuthError(await Token(FormOf(("grant_type", "client_credentials"), ("client_id", "eu-west-2_Nobody"), ("client_secret", AllSecret))), 401, "invalid_client");
        AssertOAuthError(await Token(FormOf(("grant_type", "client_credentials"), ("client_id", "not a tenant"), ("client_secret", AllSecret))), 401, "invalid_client");
        AssertOAuthError(await Token(FormOf(("grant_type", "client_credentials"))), 401, "invalid_client");
    }

    [Fact]
    public async Task Other_grants_and_malformed_requests_are_400s_in_OAuth2s_terms()
    {
        AssertOAuthError(await Token(FormOf(("grant_type", "password"), ("username", "a"), ("password", "b")), Basic(TenantId, AllSecret)), 400, "unsupported_grant_type");
        AssertOAuthError(await Token(FormOf(("scope", Scopes.Read)), Basic(TenantId, AllSecret)), 400, "invalid_request");
        AssertOAuthError(await Token("{\"grant_type\":\"client_credentials\"}", Basic(TenantId, AllSecret), "application/json"), 400, "invalid_request");
        AssertOAuthError(await Token(FormOf(("grant_type", "client_credentials"), ("grant_type", "client_credentials")), Basic(TenantId, AllSecret)), 400, "invalid_request");
        AssertOAuthError(await Token(FormOf(("grant_type", "client_credentials"), ("client_secret", AllSecret)), Basic(TenantId, AllSecret)), 400, "invalid_request");
    }

    [Fact]
    public async Task An_expired_token_or_one_signed_with_another_key_is_refused()
    {
        var settings = Host.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<AuthSettings>>().Value;
        var (_, secretId) = await AddSecret(Host.Services, TenantId, Scopes.All);
        string Make(string base64Key, DateTime expires) => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = AccessTokens.Issuer, Audience = AccessTokens.Audience, IssuedAt = expires.AddHours(-1), NotBefore = expires.AddHours(-1), Expires = expires,
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Convert.FromBase64String(base64Key)), SecurityAlgorithms.HmacSha256),
            Claims = new Dictionary<string, object> { ["tenant"] = TenantId, ["sid"] = secretId, ["scope"] = Scopes.All },
        });

        // Made as the service makes them: accepted while valid...
        (await Get(Read, "Bearer " + Make(settings.TokenSigningKey, DateTime.UtcNow.AddMinutes(5)))).AssertStatus(200);
        // ...refused once expired (beyond the 30 s clock skew allowed between nodes)...
        var expired = await Get(Read, "Bearer " + Make(settings.TokenSigningKey, DateTime.UtcNow.AddMinutes(-2)));
        expired.AssertProblem(401);
        Assert.Contains("error=\"invalid_token\"", expired.Headers.WWWAuthenticate.ToString());
        // ...and refused when another key signed it.
        (await Get(Read, "Bearer " + Make(Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)), DateTime.UtcNow.AddMinutes(5)))).AssertProblem(401);
        (await Get(Read, "Bearer not.a.token")).AssertProblem(401);
    }

    [Fact]
    public async Task Revoking_the_secret_kills_its_tokens_once_the_auth_cache_lets_go()
    {
        var (secret, secretId) = await AddSecret(Host.Services, TenantId, Scopes.Read);
        var (token, _) = await TokenFor(secret);
        (await Get(Read, "Bearer " + token)).AssertStatus(200);
        await Revoke(Host.Services, TenantId, secretId);
        // Auth:CacheSeconds bounds how long a revoked secret still works; empty the cache instead of waiting for it.
        ((MemoryCache)Host.Services.GetRequiredService<IMemoryCache>()).Compact(1.0);
        (await Get(Read, "Bearer " + token)).AssertProblem(401);
        AssertOAuthError(await Token(FormOf(("grant_type", "client_credentials")), Basic(TenantId, secret)), 401, "invalid_client");
    }

    [Fact]
    public async Task A_tenant_secret_is_a_static_bearer_token_on_scim_only_and_only_with_the_scim_scope()
    {
        var (scim, _) = await AddSecret(Host.Services, TenantId, Scopes.Scim);
        (await Host.Call("GET", "/scim/v2/Users", "Bearer " + scim)).AssertStatus(200);
        (await Host.Call("GET", "/scim/v2/Users", "Bearer " + AllSecret)).AssertStatus(200); // api/all includes api/scim
        (await Get(Read, "Bearer " + scim)).AssertProblem(401);
        (await Get(Read, "Bearer " + AllSecret)).AssertProblem(401);
        (await Host.Call("GET", "/scim/v2/Users", "Bearer " + ReadSecret)).AssertScimError(401);
        // Basic with a scim secret works on SCIM, and the scim scope opens nothing else.
        (await Host.Call("GET", "/scim/v2/Users", Basic(TenantId, scim))).AssertStatus(200);
        (await Get(Read, Basic(TenantId, scim))).AssertProblem(403);

        // Access tokens: one with api/scim works on SCIM, one without is forbidden there.
        var (scimToken, _) = await TokenFor(AllSecret, Scopes.Scim);
        (await Host.Call("GET", "/scim/v2/Groups", "Bearer " + scimToken)).AssertStatus(200);
        (await Get(Read, "Bearer " + scimToken)).AssertProblem(403);
        var (readToken, _) = await TokenFor(AllSecret, Scopes.Read);
        (await Host.Call("GET", "/scim/v2/Groups", "Bearer " + readToken)).AssertScimError(403);
    }

    [Fact]
    public async Task Brute_force_at_the_token_endpoint_meets_429_with_Retry_After()
    {
        var ip = IPAddress.Parse(Scenarios.RandomIp());
        for (var i = 0; i < 10; i++)
            Assert.True((await Token(FormOf(("grant_type", "client_credentials")), Basic(TenantId, "es_guess" + i), ip: ip)) is { Status: 401 } r, $"attempt {i}");
        var blocked = (await Token(FormOf(("grant_type", "client_credentials")), Basic(TenantId, AllSecret), ip: ip)).AssertProblem(429);
        Assert.NotNull(blocked);
        // Another client is served.
        (await Token(FormOf(("grant_type", "client_credentials")), Basic(TenantId, AllSecret))).AssertStatus(200);
    }

    [Fact]
    public void The_OpenAPI_document_declares_bearer_and_client_credentials_and_the_token_endpoint()
    {
        var document = OpenApi.OpenApiContract.Document(Host);
        var schemes = document["components"]!["securitySchemes"]!;
        Assert.Equal("bearer", schemes["bearer"]!.Str("scheme"));
        Assert.Equal("/oauth2/token", schemes["oauth2"]!["flows"]!["clientCredentials"]!.Str("tokenUrl"));
        var token = document["paths"]!["/oauth2/token"]!["post"]!;
        Assert.NotNull(token["requestBody"]!["content"]![Form]);
        Assert.NotNull(token["responses"]!["200"]);
        var read = document["paths"]!["/users/{userId}/enrolments"]!["get"]!["security"]!.AsArray();
        Assert.Contains(read, r => r!.AsObject().ContainsKey("oauth2"));
    }
}
