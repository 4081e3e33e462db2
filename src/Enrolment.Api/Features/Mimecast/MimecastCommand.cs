using System.Security.Cryptography;
using JasperFx.CommandLine;
using Marten;

namespace Enrolment.Api.Features.Mimecast;

public sealed class MimecastInput : NetCoreInput
{
    [Description("generate-key | rotate-key")]
    public string Action { get; set; } = "";
}

/// <summary>
/// Key-encryption key administration: `mimecast generate-key` prints a new random key (Base64 of 32 bytes) alone
/// on stdout; `mimecast rotate-key` re-encrypts the stored Mimecast secret keys from
/// Mimecast:PreviousKeyEncryptionKey to Mimecast:KeyEncryptionKey (README, Running in production).
/// </summary>
[Description("Generate a Mimecast key-encryption key, or re-encrypt stored Mimecast secrets under a new one", Name = "mimecast")]
public sealed class MimecastCommand : JasperFxAsyncCommand<MimecastInput>
{
    public MimecastCommand()
    {
        Usage("Generate a key-encryption key, or rotate the stored secrets to the configured one").Arguments(x => x.Action);
    }

    public override async Task<bool> Execute(MimecastInput input)
    {
        switch (input.Action)
        {
            case "generate-key":
                Console.Out.WriteLine(Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
                return true;
            case "rotate-key":
            {
                using var host = input.BuildHost();
                MimecastSecretCipher cipher;
                try { cipher = host.Services.GetRequiredService<MimecastSecretCipher>(); }
                catch (Exception e) when (e is InvalidOperationException or Microsoft.Extensions.Options.OptionsValidationException) { return Fail(e.Message); }
                if (!cipher.HasPreviousKey)
                    return Fail("Set Mimecast__PreviousKeyEncryptionKey to the key being replaced and Mimecast__KeyEncryptionKey to the new one " +
                                "(`mimecast generate-key` makes one), then run `mimecast rotate-key` again.");
                var store = host.Services.GetRequiredService<IDocumentStore>();
                await store.Storage.ApplyAllConfiguredChangesToDatabaseAsync();
                var outcome = await RotateKeyEncryptionKey.Run(store, cipher);
                Console.Out.WriteLine($"Re-encrypted {outcome.Rotated} Mimecast secret keys under Mimecast:KeyEncryptionKey; {outcome.AlreadyCurrent} were already under it.");
                if (outcome.Unreadable.Count > 0)
                    return Fail($"{outcome.Unreadable.Count} Mimecast keys open with neither key and were left as they are (their clients cannot sign in): " +
                                $"{string.Join(", ", outcome.Unreadable)}. Revoke them (`tenants revoke-mimecast-key`) and issue new ones.");
                await Console.Error.WriteLineAsync("Every stored Mimecast secret key is now under the new key. Remove Mimecast__PreviousKeyEncryptionKey from every node.");
                return true;
            }
            default:
                return Fail($"Unknown action '{input.Action}'. Use generate-key or rotate-key.");
        }
    }

    private static bool Fail(string message)
    {
        Console.Error.WriteLine(message);
        return false;
    }
}
