using System.Security.Claims;
using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using NodaTime;

namespace Enrolment.Api.Infrastructure.Auth;

/// <summary>
/// Access tokens of POST /oauth2/token: JSON Web Tokens (RFC 9068 profile) signed with HMAC-SHA256 under
/// Auth:TokenSigningKey, made and checked by Microsoft.IdentityModel (the library under ASP.NET Core's JWT bearer
/// handler), not by a format of our own. A token carries the tenant, the granted scopes and the id of the secret it
/// was issued from, never the secret; the service stores no token at all, and on every use checks that the secret is
/// still active (<see cref="SecretVerifier.ActiveScopes"/>, cached Auth:CacheSeconds), so revoking the secret kills its
/// tokens within that time.
/// </summary>
public sealed class AccessTokens
{
    public const string Issuer = "enrolment";
    public const string Audience = "enrolment-api";
    public const string SecretIdClaim = "sid";
    public const string TenantClaim = "tenant";
    public const string ScopeClaim = "scope";

    /// <summary>The development default of Auth:TokenSigningKey, published in appsettings.json; refused outside Development.</summary>
    public const string DevelopmentSigningKey = "ZGV2LW9ubHkgdG9rZW4gc2lnbmluZyBrZXkgLSBjaGc=";

    private readonly AuthSettings settings;
    private readonly IClock clock;
    private readonly SymmetricSecurityKey current;
    private readonly SymmetricSecurityKey[] accepted;
    private readonly JsonWebTokenHandler handler = new() { MapInboundClaims = false };

    public AccessTokens(IOptions<AuthSettings> options, IClock clock)
    {
        settings = options.Value;
        this.clock = clock;
        current = Key(settings.TokenSigningKey, "Auth:TokenSigningKey")
                  ?? throw new InvalidOperationException("Auth:TokenSigningKey is not set: it signs the access tokens of POST /oauth2/token. Generate one with `openssl rand -base64 32` and set it as Auth__TokenSigningKey (the same on every node).");
        var previous = string.IsNullOrWhiteSpace(settings.PreviousTokenSigningKey) ? null : Key(settings.PreviousTokenSigningKey, "Auth:PreviousTokenSigningKey");
        accepted = previous is null ? [current] : [current, previous];
        ValidationParameters = new TokenValidationParameters
        {
            ValidIssuer = Issuer,
            ValidAudience = Audience,
            IssuerSigningKeys = accepted,
            ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ClockSkew = TimeSpan.FromSeconds(30),
            NameClaimType = TenantClaim,
        };
    }

    public TokenValidationParameters ValidationParameters { get; }

    public TimeSpan Lifetime => settings.AccessTokenLifetime;

    public string Issue(VerifiedSecret secret, IReadOnlyCollection<string> scopes)
    {
        var now = clock.GetCurrentInstant().ToDateTimeUtc();
        return handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = Audience,
            IssuedAt = now,
            NotBefore = now,
            Expires = now + Lifetime,
            TokenType = "at+jwt",
            SigningCredentials = new SigningCredentials(current, SecurityAlgorithms.HmacSha256),
            Claims = new Dictionary<string, object>
            {
                [JwtRegisteredClaimNames.Sub] = secret.TenantId,
                [JwtRegisteredClaimNames.Jti] = Guid.NewGuid().ToString("N"),
                ["client_id"] = secret.TenantId,
                [TenantClaim] = secret.TenantId,
                [SecretIdClaim] = secret.SecretId,
                [ScopeClaim] = string.Join(' ', scopes),
            },
        });
    }

    /// <summary>A JSON Web Token has three dot-separated parts; a tenant secret has none.</summary>
    public static bool LooksLikeToken(string token) => token.Count(c => c == '.') == 2;

    /// <summary>The token's tenant, secret id and scopes when its signature, issuer, audience and lifetime hold; else null.</summary>
    public async Task<(string TenantId, string SecretId, string[] Scopes)?> Read(string token)
    {
        if (token.Length > 4096) return null;
        var result = await handler.ValidateTokenAsync(token, ValidationParameters);
        if (!result.IsValid) return null;
        var claims = result.ClaimsIdentity;
        var tenant = claims.FindFirst(TenantClaim)?.Value;
        var secretId = claims.FindFirst(SecretIdClaim)?.Value;
        var scopes = claims.FindFirst(ScopeClaim)?.Value?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];
        return tenant is null || secretId is null ? null : (tenant, secretId, scopes);
    }

    private static SymmetricSecurityKey? Key(string base64, string name)
    {
        if (string.IsNullOrWhiteSpace(base64)) return null;
        byte[] bytes;
        try { bytes = Convert.FromBase64String(base64.Trim()); }
        catch (FormatException) { throw new InvalidOperationException($"{name} must be the Base64 encoding of 32 random bytes (`openssl rand -base64 32`)."); }
        if (bytes.Length < 32) throw new InvalidOperationException($"{name} must be the Base64 encoding of at least 32 random bytes (`openssl rand -base64 32`).");
        // A key id derived from the key (not the key): lets a token say which key signed it during a rotation.
        return new SymmetricSecurityKey(bytes) { KeyId = Convert.ToHexStringLower(SHA256.HashData(bytes))[..16] };
    }
}
