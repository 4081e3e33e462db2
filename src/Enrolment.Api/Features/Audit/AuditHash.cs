using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Enrolment.Api.Features.Audit;

/// <summary>
/// The canonical forms of docs/audit.md, in C#: the same bytes PostgreSQL's trigger hashes (AuditChainSql), computed
/// again here so `audit verify` does not trust the database's own functions. Every field is written as
/// "{UTF-8 byte length}:{value}\n", so no value can be mistaken for another field whatever it contains.
/// </summary>
public static class AuditHash
{
    public const string Zeros = AuditChainSql.Zeros;
    public const string EventForm = "enrolment-audit-event-v1";
    public const string CheckpointForm = "enrolment-audit-checkpoint-v1";

    public sealed record EventFields(string TenantId, Guid StreamId, long Version, string Type, string Timestamp,
        string? UserName, string? CorrelationId, string? CausationId, string? Headers, string Data);

    public static string Event(EventFields e, string previousHash) => Hex(Fields(EventForm, e.TenantId, e.StreamId.ToString("D"),
        e.Version.ToString(CultureInfo.InvariantCulture), e.Type, e.Timestamp, e.UserName, e.CorrelationId, e.CausationId, e.Headers, e.Data, previousHash));

    public static string Checkpoint(string tenantId, long number, long highWaterSequence, string takenAt, long streamCount, string headsDigest, string previousHash) =>
        Hex(Fields(CheckpointForm, tenantId, number.ToString(CultureInfo.InvariantCulture), highWaterSequence.ToString(CultureInfo.InvariantCulture),
            takenAt, streamCount.ToString(CultureInfo.InvariantCulture), headsDigest, previousHash));

    /// <summary>One line of the heads digest: "{stream id}:{version}:{hash}\n", streams in ascending id order.</summary>
    public static byte[] HeadLine(Guid streamId, long version, string hash) =>
        Encoding.UTF8.GetBytes($"{streamId:D}:{version.ToString(CultureInfo.InvariantCulture)}:{hash}\n");

    public static string Sha256Hex(string text) => Hex(Encoding.UTF8.GetBytes(text));

    /// <summary>The timestamp as the canonical form writes it: UTC, microseconds, 'Z'.</summary>
    public static string Timestamp(DateTimeOffset value) => value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);

    private static byte[] Fields(params string?[] values)
    {
        var text = new StringBuilder();
        foreach (var v in values)
        {
            var value = v ?? "";
            text.Append(Encoding.UTF8.GetByteCount(value).ToString(CultureInfo.InvariantCulture)).Append(':').Append(value).Append('\n');
        }
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));
}
