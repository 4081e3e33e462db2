using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Enrolment.Api.Features.Audit;

/// <summary>
/// One line of GET /audit/export, as the OpenAPI document describes it (docs/audit.md says what each field means).
/// <see cref="ExportAuditEndpoint"/> writes the lines itself, streaming; these types exist so that the line's schema is
/// generated from a type rather than written by hand, and must follow what it writes.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "kind")]
[JsonDerivedType(typeof(AuditExportEvent), "event")]
[JsonDerivedType(typeof(AuditExportCheckpointLine), "checkpoint")]
[JsonDerivedType(typeof(AuditExportAnchor), "anchor")]
[Description("One line of the NDJSON export: every event (kind \"event\"), then every checkpoint of the tenant in order (kind \"checkpoint\"), then one anchor (kind \"anchor\").")]
public abstract record AuditExportLine(string TenantId);

public sealed record AuditExportEvent(
    string TenantId,
    Guid StreamId,
    long Version,
    long Sequence,
    [property: Description("Marten's event type name, e.g. enrolment_completed.")] string Type,
    [property: Description("When the event was stored, UTC with six fraction digits.")] string Timestamp,
    AuditExportActor Actor,
    [property: Description("The event data as PostgreSQL's text of the jsonb value: hashed as these bytes.")] string DataText,
    JsonElement Data,
    string? PreviousHash,
    string? Hash) : AuditExportLine(TenantId);

public sealed record AuditExportActor(string UserName, string CorrelationId, string CausationId, string Headers);

public sealed record AuditExportAnchor(
    string TenantId,
    [property: Description("True when the export holds every stream of the tenant (no filter): the checkpoints' digests can then be recomputed.")] bool WholeTenant,
    long Events,
    [property: Description("The tenant's latest checkpoint; null before the first one is taken.")] AuditExportCheckpoint? Checkpoint) : AuditExportLine(TenantId);

[Description("One of the tenant's checkpoints, oldest first: verify_export.py checks their chain and, on a whole-tenant export, recomputes each form-2 range digest from the events.")]
public sealed record AuditExportCheckpointLine(string TenantId, AuditExportCheckpoint Checkpoint) : AuditExportLine(TenantId);

[Description("A checkpoint (docs/audit.md), with the fields of its form only. Form 2: a digest of the chain rows with a sequence in (fromSequence, highWaterSequence]. Form 1 (older checkpoints): a digest of every stream's head.")]
public sealed record AuditExportCheckpoint(
    long Number,
    [property: Description("1, 2 or 3; an export of checkpoints written before form 2 has no form: it is 1. Form 3 is form 2 taken after the tenant moved shards, with its epoch.")] int Form,
    long HighWaterSequence,
    string TakenAt,
    string PreviousHash,
    string Hash,
    [property: Description("Form 2 and 3: the previous checkpoint's highWaterSequence (0 for the first, and for the first after a move)."), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? FromSequence = null,
    [property: Description("Form 2: how many chain rows the range holds."), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? EventCount = null,
    [property: Description("Form 2: SHA-256 over one line \"{sequence}:{streamId}:{version}:{hash}\\n\" per chain row of the range, in sequence order."), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? RangeDigest = null,
    [property: Description("Form 1 only."), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? StreamCount = null,
    [property: Description("Form 1 only."), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? HeadsDigest = null,
    [property: Description("Form 3 only: how many times the tenant had moved shards (`tenants move`) when it was taken. Only the ranges of the latest epoch can be recomputed from the export's sequence numbers."), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Epoch = null);
