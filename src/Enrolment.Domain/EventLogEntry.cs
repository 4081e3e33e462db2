using NodaTime;

namespace Enrolment.Domain;

/// <summary>
/// One entry of the enrolment's eventLog (PRODUCT.md, "The enrolment"): kept by <see cref="EnrolmentState.Fold"/>, one per
/// event, with Thrive's names <see cref="Type"/> and <see cref="NextStatus"/>.
/// <see cref="Reason"/> is set for waivers and extensions only.
/// </summary>
public sealed record EventLogEntry(
    string Type,
    string? CompletionId,
    EnrolmentStatus PreviousStatus,
    EnrolmentStatus NextStatus,
    Instant CreatedAt,
    Instant UpdatedAt,
    // Absent from the JSON of other entries, so that their shape stays what clients of the first version know.
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    string? Reason = null)
{
    /// <summary>Deprecated alias of <see cref="Type"/>, kept for clients of the first version until a major version drops it.</summary>
    public string EventType => Type;

    /// <summary>Deprecated alias of <see cref="NextStatus"/>, kept for clients of the first version until a major version drops it.</summary>
    public EnrolmentStatus NewStatus => NextStatus;
}
