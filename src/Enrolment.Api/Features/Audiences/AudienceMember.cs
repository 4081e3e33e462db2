using NodaTime;

namespace Enrolment.Api.Features.Audiences;

/// <summary>
/// One user's membership of one audience. Audiences are plain documents: the history that matters for the
/// audit (who was enrolled and archived, and why) lives in the enrolment streams.
/// </summary>
public sealed class AudienceMember
{
    public string Id { get; set; } = "";
    public string AudienceId { get; set; } = "";
    public string UserId { get; set; } = "";
    public Instant JoinedAt { get; set; }

    // '/' is not allowed in external ids, so the key is unambiguous.
    public static string Key(string audienceId, string userId) => audienceId + "/" + userId;
}
