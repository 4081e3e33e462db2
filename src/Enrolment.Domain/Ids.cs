using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Enrolment.Domain;

/// <summary>Validation of the external ids the service accepts (PRODUCT.md, "Words").</summary>
public static partial class Ids
{
    [GeneratedRegex(@"^[A-Za-z0-9._:@-]{1,64}\z", RegexOptions.CultureInvariant)]
    private static partial Regex ExternalIdPattern();

    [GeneratedRegex(@"^[a-z]{2}(-[a-z]+)+-[0-9]_[A-Za-z0-9]+\z", RegexOptions.CultureInvariant)]
    private static partial Regex TenantIdPattern();

    /// <summary>User, audience, content and completion ids: 1–64 chars of [A-Za-z0-9._:@-].</summary>
    public static bool IsValidExternalId(string? value) => value is not null && ExternalIdPattern().IsMatch(value);

    public static bool IsValidTenantId(string? value) =>
        value is not null && value.Length <= 128 && TenantIdPattern().IsMatch(value);

    /// <summary>
    /// One enrolment per (assignment, user), ever: its stream id is derived from the tenant, the assignment and
    /// the user (a name-based UUID, RFC 9562 version 5), so two concurrent joins race for the same stream and
    /// the loser finds it instead of creating a duplicate.
    /// </summary>
    public static Guid EnrolmentId(string tenantId, Guid assignmentId, string userId) =>
        NameBased(Namespace, $"{tenantId}\n{assignmentId:N}\n{userId}");

    /// <summary>A name-based UUID (RFC 9562 version 5): the same namespace and name always give the same id.</summary>
    public static Guid NameBased(Guid @namespace, string text) => NameBased(@namespace.ToByteArray(bigEndian: true), text);

    private static Guid NameBased(byte[] @namespace, string text)
    {
        var name = Encoding.UTF8.GetBytes(text);
        var input = new byte[@namespace.Length + name.Length];
        @namespace.CopyTo(input, 0);
        name.CopyTo(input, @namespace.Length);
        var hash = SHA1.HashData(input);
        var bytes = hash.AsSpan(0, 16).ToArray();
        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x50); // version 5
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80); // RFC variant
        return new Guid(bytes, bigEndian: true);
    }

    // A fixed namespace for enrolment ids; changing it would change every enrolment id.
    private static readonly byte[] Namespace = Guid.Parse("6f1f6c53-2b7e-4f0a-9a57-3f1a6e0c9d21").ToByteArray(bigEndian: true);
}
