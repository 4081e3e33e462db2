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
[JsonDerivedType(typeof(AuditExportAnchor), "anchor")]
[Description("One line of the NDJSON export: every event (kind \"event\"), then one anchor (kind \"anchor\").")]
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
    [property: Description("True when the export holds every stream of the tenant (no filter): the heads digest can then be recomputed.")] bool WholeTenant,
    long Events,
    [property: Description("The tenant's latest checkpoint; null before the first one is taken.")] AuditExportCheckpoint? Checkpoint) : AuditExportLine(TenantId);

public sealed record AuditExportCheckpoint(long Number, long HighWaterSequence, string TakenAt, long StreamCount, string HeadsDigest, string PreviousHash, string Hash);
