using System.Security.Cryptography;
using System.Text;
using Marten;
using Microsoft.Extensions.Options;
using NodaTime;

namespace Enrolment.Api.Features.Mimecast;

/// <summary>The "Mimecast" configuration section (appsettings.json; docs/mimecast.md explains each knob).</summary>
public sealed class MimecastSettings
{
    /// <summary>
    /// Base64 of 32 bytes: the AES-256-GCM key that encrypts Mimecast secret keys at rest. The value in
    /// appsettings.json is a published development default and must be replaced in production.
    /// </summary>
    public string KeyEncryptionKey { get; set; } = "";

    /// <summary>
    /// Base64 of 32 bytes, optional: the key being rotated away from. Secrets sealed with it still decrypt, and
    /// `mimecast rotate-key` re-encrypts them under <see cref="KeyEncryptionKey"/>; remove it once that has run.
    /// </summary>
    public string PreviousKeyEncryptionKey { get; set; } = "";

    /// <summary>How far x-mc-date may be from the service clock, either way.</summary>
    public TimeSpan AllowedClockSkew { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>How long a seen x-mc-req-id is remembered; at least twice the skew, so no accepted date outlives its id.</summary>
    public TimeSpan ReplayWindow { get; set; } = TimeSpan.FromMinutes(30);

    public int DefaultPageSize { get; set; } = 100;
    public int MaxPageSize { get; set; } = 500;

    /// <summary>Request items (users) one call may name.</summary>
    public int MaxItemsPerRequest { get; set; } = 500;

    /// <summary>Failed authentications one client (IP address) may make per minute before it gets 429.</summary>
    public int MaxFailuresPerClientPerMinute { get; set; } = 10;

    /// <summary>The development default of <see cref="KeyEncryptionKey"/>; outside Development the service refuses it.</summary>
    public const string DevelopmentKeyEncryptionKey = "ZGV2LW9ubHktS0VLOnJlcGxhY2UtaW4tcHJvZC0zMmI=";
}

/// <summary>
/// A Mimecast API 1.0 key set issued to a tenant. Stored outside any tenant (single-tenanted), keyed by access key,
/// so that a request's access key finds its tenant. The secret key must be available to verify HMACs, so it is
/// kept encrypted (AES-256-GCM, <see cref="MimecastSecretCipher"/>), never hashed and never in clear.
/// </summary>
public sealed class MimecastKey
{
    /// <summary>The access key, as sent in <c>Authorization: MC {accessKey}:{signature}</c>.</summary>
    public string Id { get; set; } = "";
    public string TenantId { get; set; } = "";
    public string AppId { get; set; } = "";
    public string AppKey { get; set; } = "";
    /// <summary>nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes); the access key is the associated data.</summary>
    public byte[] EncryptedSecretKey { get; set; } = [];
    public Instant CreatedAt { get; set; }
    public Instant? RevokedAt { get; set; }
}

/// <summary>What `tenants mimecast-key` prints, once: the four values a Mimecast client is configured with.</summary>
public sealed record IssuedMimecastKey(string AccessKey, string SecretKey, string AppId, string AppKey);

/// <summary>
/// AES-256-GCM with the configured key-encryption key. A wrong key or a tampered row fails to decrypt. During a
/// rotation the previous key still decrypts, so a node with the new settings serves every key set before and after
/// `mimecast rotate-key` has run.
/// </summary>
public sealed class MimecastSecretCipher
{
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private readonly byte[] key;
    private readonly byte[]? previousKey;

    public MimecastSecretCipher(IOptions<MimecastSettings> settings, IHostEnvironment? environment = null)
    {
        if (string.IsNullOrWhiteSpace(settings.Value.KeyEncryptionKey))
            throw new InvalidOperationException("Mimecast:KeyEncryptionKey is not set: it encrypts Mimecast and webhook secrets. Generate one with `openssl rand -base64 32` (or `mimecast generate-key`) and set it as Mimecast__KeyEncryptionKey.");
        if (!TryDecodeKey(settings.Value.KeyEncryptionKey, out key))
            throw new InvalidOperationException("Mimecast:KeyEncryptionKey must be the Base64 encoding of exactly 32 random bytes (AES-256).");
        // Also for the CLI (`tenants mimecast-key`), which never starts the host and so never meets the start-up check.
        if (environment is not null && !environment.IsDevelopment() && settings.Value.KeyEncryptionKey.Trim() == MimecastSettings.DevelopmentKeyEncryptionKey)
            throw new InvalidOperationException("Mimecast:KeyEncryptionKey is the development key published in appsettings.json; outside Development it is refused. " +
                                                "Generate a key with `openssl rand -base64 32` and set it as Mimecast__KeyEncryptionKey.");
        if (!string.IsNullOrWhiteSpace(settings.Value.PreviousKeyEncryptionKey))
        {
            if (!TryDecodeKey(settings.Value.PreviousKeyEncryptionKey, out var previous))
                throw new InvalidOperationException("Mimecast:PreviousKeyEncryptionKey must be empty or the Base64 encoding of exactly 32 bytes (the key being rotated away from).");
            previousKey = previous;
        }
    }

    /// <summary>Whether Mimecast:PreviousKeyEncryptionKey is set (a rotation is under way).</summary>
    public bool HasPreviousKey => previousKey is not null;

    public static bool TryDecodeKey(string? base64, out byte[] key)
    {
        key = [];
        if (string.IsNullOrWhiteSpace(base64)) return false;
        var buffer = new byte[32];
        if (!Convert.TryFromBase64String(base64.Trim(), buffer, out var written) || written != 32) return false;
        key = buffer;
        return true;
    }

    public byte[] Encrypt(string accessKey, byte[] secret)
    {
        var output = new byte[NonceSize + secret.Length + TagSize];
        var nonce = output.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(key, TagSize);
        aes.Encrypt(nonce, secret, output.AsSpan(NonceSize, secret.Length), output.AsSpan(NonceSize + secret.Length), Encoding.UTF8.GetBytes(accessKey));
        return output;
    }

    /// <summary>The secret key's bytes (the Base64-decoded secret key), or null if the row decrypts with neither configured key.</summary>
    public byte[]? Decrypt(string accessKey, byte[] sealedSecret) =>
        DecryptWithCurrentKey(accessKey, sealedSecret) ?? DecryptWithPreviousKey(accessKey, sealedSecret);

    public byte[]? DecryptWithCurrentKey(string accessKey, byte[] sealedSecret) => Open(key, accessKey, sealedSecret);

    public byte[]? DecryptWithPreviousKey(string accessKey, byte[] sealedSecret) =>
        previousKey is null ? null : Open(previousKey, accessKey, sealedSecret);

    private static byte[]? Open(byte[] withKey, string accessKey, byte[] sealedSecret)
    {
        if (sealedSecret.Length <= NonceSize + TagSize) return null;
        var length = sealedSecret.Length - NonceSize - TagSize;
        var plain = new byte[length];
        try
        {
            using var aes = new AesGcm(withKey, TagSize);
            aes.Decrypt(sealedSecret.AsSpan(0, NonceSize), sealedSecret.AsSpan(NonceSize, length), sealedSecret.AsSpan(NonceSize + length), plain, Encoding.UTF8.GetBytes(accessKey));
            return plain;
        }
        catch (AuthenticationTagMismatchException)
        {
            return null;
        }
    }
}

/// <summary>Issuing and revoking key sets: the `tenants mimecast-key` and `tenants revoke-mimecast-key` use cases.</summary>
public static class MimecastKeys
{
    public const int SecretKeyBytes = 32;

    /// <summary>Creates a key set for the tenant; the caller saves the session. The secret key is returned once and only stored encrypted.</summary>
    public static IssuedMimecastKey Issue(IDocumentSession session, MimecastSecretCipher cipher, string tenantId, Instant now)
    {
        var secret = RandomNumberGenerator.GetBytes(SecretKeyBytes);
        try
        {
            // "mc" + 128 random bits in hex: no ':' (the Authorization header's separator), nothing to escape anywhere.
            var accessKey = "mc" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
            var key = new MimecastKey
            {
                Id = accessKey,
                TenantId = tenantId,
                AppId = Guid.NewGuid().ToString(),
                AppKey = Guid.NewGuid().ToString(),
                EncryptedSecretKey = cipher.Encrypt(accessKey, secret),
                CreatedAt = now,
            };
            session.Insert(key);
            return new IssuedMimecastKey(key.Id, Convert.ToBase64String(secret), key.AppId, key.AppKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    /// <summary>Marks the key revoked; requests signed with it are refused from then on. False if the tenant has no such key.</summary>
    public static async Task<bool> Revoke(IDocumentSession session, string tenantId, string accessKey, Instant now, CancellationToken ct = default)
    {
        var key = await session.LoadAsync<MimecastKey>(accessKey, ct);
        if (key is null || key.TenantId != tenantId) return false;
        key.RevokedAt ??= now;
        session.Store(key);
        return true;
    }

    public static async Task<List<MimecastKey>> ForTenant(IQuerySession session, string tenantId, CancellationToken ct = default) =>
        (await session.Query<MimecastKey>().Where(k => k.TenantId == tenantId).ToListAsync(ct)).OrderBy(k => k.CreatedAt).ToList();
}
