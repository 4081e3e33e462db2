using System.Security.Cryptography;
using Enrolment.Api.Infrastructure;
using Marten;

namespace Enrolment.Api.Features.Mimecast;

/// <summary>
/// `mimecast rotate-key`: every stored Mimecast secret key that opens with Mimecast:PreviousKeyEncryptionKey is
/// sealed again under Mimecast:KeyEncryptionKey, in one transaction. Safe to run again: rows already under the
/// current key are left alone, so a run after the last node took the new settings catches keys issued meanwhile.
/// </summary>
public static class RotateKeyEncryptionKey
{
    /// <param name="Unreadable">access keys whose secret opens with neither key (sealed with some third key): left as they are</param>
    public sealed record Outcome(int Rotated, int AlreadyCurrent, IReadOnlyList<string> Unreadable);

    public static async Task<Outcome> Run(IDocumentStore store, MimecastSecretCipher cipher, CancellationToken ct = default)
    {
        if (!cipher.HasPreviousKey)
            throw new InvalidOperationException("Mimecast:PreviousKeyEncryptionKey is not set: set it to the key being replaced, and Mimecast:KeyEncryptionKey to the new one.");

        await using var session = await store.OpenHome();
        var keys = await session.Query<MimecastKey>().ToListAsync(ct);
        int rotated = 0, current = 0;
        var unreadable = new List<string>();
        foreach (var key in keys)
        {
            if (cipher.DecryptWithCurrentKey(key.Id, key.EncryptedSecretKey) is { } already)
            {
                CryptographicOperations.ZeroMemory(already);
                current++;
                continue;
            }
            var secret = cipher.DecryptWithPreviousKey(key.Id, key.EncryptedSecretKey);
            if (secret is null) { unreadable.Add(key.Id); continue; }
            try { key.EncryptedSecretKey = cipher.Encrypt(key.Id, secret); }
            finally { CryptographicOperations.ZeroMemory(secret); }
            session.Store(key);
            rotated++;
        }
        await session.SaveChangesAsync(ct);
        return new Outcome(rotated, current, unreadable);
    }
}
