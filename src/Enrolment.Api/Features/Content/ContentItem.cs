using NodaTime;

namespace Enrolment.Api.Features.Content;

/// <summary>A training item: its id is what assignments name as primaryContentId.</summary>
public sealed class ContentItem
{
    public string Id { get; set; } = "";
    public string? Title { get; set; }
    public Instant UpdatedAt { get; set; }
}
