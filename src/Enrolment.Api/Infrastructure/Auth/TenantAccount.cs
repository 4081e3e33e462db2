using System.Security.Cryptography;
using NodaTime;

namespace Enrolment.Api.Infrastructure.Auth;

/// <summary>A tenant and its API secrets. Stored outside any tenant (single-tenanted document).</summary>
public sealed class TenantAccount
{
    public required string Id { get; init; }
    public required Instant CreatedAt { get; init; }
    public List<ApiSecret> Secrets { get; init; } = [];
}

/// <summary>An issued secret: only its SHA-256 hash is kept (the secret has 256 random bits, so no stretching is needed).</summary>
public sealed class ApiSecret
{
    public required string SecretId { get; init; }
    public required byte[] Hash { get; init; }
    public required string[] Scopes { get; init; }
    public required Instant CreatedAt { get; init; }
    public Instant? RevokedAt { get; set; }
}

public static class Scopes
{
    public const string Read = "api/read";
    public const string Write = "api/write";
    public const string Webhooks = "api/webhooks";
    /// <summary>SCIM 2.0 provisioning under /scim/v2; a secret with it also works there as a static bearer token.</summary>
    public const string Scim = "api/scim";
    /// <summary>Every other scope: secrets issued with it before api/webhooks or api/scim existed hold those too.</summary>
    public const string All = "api/all";
    public static readonly string[] Known = [Read, Write, Webhooks, Scim, All];

    public static bool Grants(IEnumerable<string> held, string needed) =>
        held.Any(s => s == All || s == needed);

    /// <summary>
    /// The scopes a holder of <paramref name="held"/> may ask for in an access token: each it holds, and each that
    /// api/all stands for.
    /// </summary>
    public static bool CanRequest(IEnumerable<string> held, string wanted) => Known.Contains(wanted) && Grants(held, wanted);
}

public static class Secrets
{
    /// <summary>A new secret: "es_" and 32 random bytes (256 bits) in base64url.</summary>
    public static string Generate() => "es_" + Base64Url(RandomNumberGenerator.GetBytes(32));

    public static string NewSecretId() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    public static byte[] Hash(string secret) => SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(secret));

    /// <summary>
    /// Compares a presented secret with every active secret of the tenant in constant time: the time taken does
    /// not depend on how much of a secret matched, nor on which one matched.
    /// </summary>
    public static ApiSecret? Match(TenantAccount account, string presented)
    {
        var hash = Hash(presented);
        ApiSecret? found = null;
        foreach (var secret in account.Secrets)
        {
            var equal = CryptographicOperations.FixedTimeEquals(hash, secret.Hash);
            if (equal && secret.RevokedAt is null) found = secret;
        }
        return found;
    }

    private static string Base64Url(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
