using System.Security.Claims;
using System.Text.Json;
using Marten;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace Enrolment.Api.Infrastructure.Auth;

/// <summary>A secret that matched: its tenant, its id (what events record; never the secret) and its scopes.</summary>
public sealed record VerifiedSecret(string TenantId, string SecretId, string[] Scopes);

/// <summary>
/// The one place that checks an API secret, whichever way it arrives: HTTP Basic, the client credentials of
/// POST /oauth2/token, a static bearer token on /scim/v2, and the secret behind an access token (still active?).
/// Every answer is cached for Auth:CacheSeconds, which bounds how long a revoked secret, and every access token issued
/// from it, keeps working. Cache keys hold SHA-256 hashes and ids, never a secret.
/// </summary>
public sealed class SecretVerifier(IDocumentStore store, IMemoryCache cache, IOptions<AuthSettings> settings)
{
    private TimeSpan CacheTime => TimeSpan.FromSeconds(settings.Value.CacheSeconds);

    /// <summary>The tenant's active secret equal to <paramref name="secret"/>, compared in constant time (<see cref="Secrets.Match"/>).</summary>
    public async Task<VerifiedSecret?> Verify(string tenantId, string secret, CancellationToken ct)
    {
        var cacheKey = "auth:" + tenantId + ":" + Convert.ToHexString(Secrets.Hash(secret));
        if (cache.TryGetValue(cacheKey, out VerifiedSecret? verified)) return verified;
        await using var session = await store.QueryHome();
        var account = await session.LoadAsync<TenantAccount>(tenantId, ct);
        var match = account is null ? null : Secrets.Match(account, secret);
        if (match is null) return null;
        verified = new VerifiedSecret(tenantId, match.SecretId, match.Scopes);
        cache.Set(cacheKey, verified, CacheTime);
        return verified;
    }

    /// <summary>
    /// A secret presented without its Tenant ID (a static bearer token): found by its SHA-256 hash among every tenant's
    /// secrets. The lookup compares hashes, so its time says nothing about how much of a secret was right.
    /// </summary>
    public async Task<VerifiedSecret?> FindWithoutTenant(string secret, CancellationToken ct)
    {
        var hash = Secrets.Hash(secret);
        var cacheKey = "auth-bearer:" + Convert.ToHexString(hash);
        if (cache.TryGetValue(cacheKey, out VerifiedSecret? verified)) return verified;
        await using var session = await store.QueryHome();
        // jsonb containment on the stored hash (Base64, as the document serializer writes byte[]).
        var probe = JsonSerializer.Serialize(new[] { new Dictionary<string, string> { ["hash"] = Convert.ToBase64String(hash) } });
        var accounts = await session.QueryAsync<TenantAccount>("where data -> 'secrets' @> ?::jsonb", ct, probe);
        foreach (var account in accounts)
            if (Secrets.Match(account, secret) is { } match)
            {
                verified = new VerifiedSecret(account.Id, match.SecretId, match.Scopes);
                cache.Set(cacheKey, verified, CacheTime);
                return verified;
            }
        return null;
    }

    /// <summary>Whether the secret an access token was issued from still exists unrevoked (cached like a verified secret).</summary>
    public async Task<string[]?> ActiveScopes(string tenantId, string secretId, CancellationToken ct)
    {
        var cacheKey = "auth-secret:" + tenantId + ":" + secretId;
        if (cache.TryGetValue(cacheKey, out string[]? scopes)) return scopes;
        await using var session = await store.QueryHome();
        var account = await session.LoadAsync<TenantAccount>(tenantId, ct);
        scopes = account?.Secrets.FirstOrDefault(s => s.SecretId == secretId && s.RevokedAt is null)?.Scopes;
        // A revoked or unknown secret is remembered as such too, so a burst of dead tokens costs one read.
        cache.Set(cacheKey, scopes, CacheTime);
        return scopes;
    }
}

/// <summary>The claims every credential of a tenant turns into, whatever the scheme: what policies, tenancy and actors read.</summary>
public static class CredentialPrincipal
{
    /// <summary>How the request authenticated: Basic, an access token, or a tenant secret sent as a bearer token.</summary>
    public const string KindClaim = "credential-kind";
    public const string BasicKind = "basic", AccessTokenKind = "access-token", StaticBearerKind = "static-bearer";

    public static ClaimsPrincipal Create(string tenantId, string secretId, IEnumerable<string> scopes, string kind, string scheme)
    {
        var claims = new List<Claim>
        {
            new(BasicAuthenticationHandler.TenantClaim, tenantId), new(ClaimTypes.Name, tenantId),
            new(BasicAuthenticationHandler.SecretIdClaim, secretId), new(KindClaim, kind),
        };
        claims.AddRange(scopes.Select(s => new Claim(BasicAuthenticationHandler.ScopeClaim, s)));
        return new ClaimsPrincipal(new ClaimsIdentity(claims, scheme));
    }
}
