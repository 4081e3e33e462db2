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
    /// <summary>The first checkpoint form: a digest of every stream's head (read the whole chain each time). Still verified.</summary>
    public const string CheckpointFormV1 = "enrolment-audit-checkpoint-v1";
    /// <summary>Today's form: a digest of the chain rows added since the previous checkpoint, in sequence order.</summary>
    public const string CheckpointFormV2 = "enrolment-audit-checkpoint-v2";
    /// <summary>Form 2 taken after the tenant moved shards (`tenants move`): the same range digest, and the move epoch it belongs to.</summary>
    public const string CheckpointFormV3 = "enrolment-audit-checkpoint-v3";

    public sealed record EventFields(string TenantId, Guid StreamId, long Version, string Type, string Timestamp,
        string? UserName, string? CorrelationId, string? CausationId, string? Headers, string Data);

    public static string Event(EventFields e, string previousHash) => Hex(Fields(EventForm, e.TenantId, e.StreamId.ToString("D"),
        e.Version.ToString(CultureInfo.InvariantCulture), e.Type, e.Timestamp, e.UserName, e.CorrelationId, e.CausationId, e.Headers, e.Data, previousHash));

    /// <summary>The hash a checkpoint's fields give, in its own form (1, 2 or 3).</summary>
    public static string Checkpoint(string tenantId, AuditCheckpoint c) => c.Form switch
    {
        1 => Hex(Fields(CheckpointFormV1, tenantId, Number(c.Id), Number(c.HighWaterSequence), c.TakenAt, Number(c.StreamCount), c.HeadsDigest, c.PreviousHash)),
        2 => Hex(Fields(CheckpointFormV2, tenantId, Number(c.Id), Number(c.FromSequence), Number(c.HighWaterSequence), c.TakenAt, Number(c.EventCount),
            c.RangeDigest, c.PreviousHash)),
        3 => Hex(Fields(CheckpointFormV3, tenantId, Number(c.Id), Number(c.Epoch), Number(c.FromSequence), Number(c.HighWaterSequence), c.TakenAt,
            Number(c.EventCount), c.RangeDigest, c.PreviousHash)),
        _ => throw new InvalidOperationException($"Audit checkpoint {c.Id} of tenant {tenantId} has form {c.Form}, which this version does not know: upgrade the service that reads it."),
    };

    /// <summary>One line of a form-2 range digest: "{sequence}:{stream id}:{version}:{hash}\n", in ascending sequence order.</summary>
    public static byte[] RangeLine(long sequence, Guid streamId, long version, string hash) =>
        Encoding.UTF8.GetBytes($"{Number(sequence)}:{streamId:D}:{Number(version)}:{hash}\n");

    /// <summary>One line of a form-1 heads digest: "{stream id}:{version}:{hash}\n", streams in ascending id order.</summary>
    public static byte[] HeadLine(Guid streamId, long version, string hash) =>
        Encoding.UTF8.GetBytes($"{streamId:D}:{version.ToString(CultureInfo.InvariantCulture)}:{hash}\n");

    public static string Sha256Hex(string text) => Hex(Encoding.UTF8.GetBytes(text));

    /// <summary>The timestamp as the canonical form writes it: UTC, microseconds, 'Z'.</summary>
    public static string Timestamp(DateTimeOffset value) => value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

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
