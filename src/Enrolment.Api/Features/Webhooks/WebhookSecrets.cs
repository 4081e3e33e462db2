using System.Security.Cryptography;
using System.Text;
using Enrolment.Api.Features.Mimecast;

namespace Enrolment.Api.Features.Webhooks;

/// <summary>
/// Signing secrets: generated once, shown once, kept sealed with the service's key-encryption key
/// (Mimecast:KeyEncryptionKey, the one AES-256-GCM key the service already holds for secrets it must use again).
/// </summary>
public sealed class WebhookSecrets(MimecastSecretCipher cipher)
{
    /// <summary>"whsec_" and 32 random bytes (256 bits) in base64url: nothing to escape in a header, a shell or JSON.</summary>
    public static string Generate() =>
        "whsec_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    // The subscription id is the associated data: a sealed secret copied onto another subscription does not open.
    public byte[] Seal(Guid subscriptionId, string secret) => cipher.Encrypt(AssociatedData(subscriptionId), Encoding.UTF8.GetBytes(secret));

    /// <summary>The secret's UTF-8 bytes (the HMAC key), or null when the row does not open with the configured key.</summary>
    public byte[]? Open(Guid subscriptionId, byte[] sealedSecret) => cipher.Decrypt(AssociatedData(subscriptionId), sealedSecret);

    /// <summary>The x-hmac-signature value: "sha256=" and the lowercase hex HMAC-SHA256 of the raw body under the secret's UTF-8 bytes.</summary>
    public static string Sign(byte[] key, byte[] body) => "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(key, body));

    private static string AssociatedData(Guid subscriptionId) => $"webhook:{subscriptionId:N}";
}
