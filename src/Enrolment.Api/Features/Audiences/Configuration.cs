using Marten;

namespace Enrolment.Api.Features.Audiences;

/// <summary>
/// Audiences: one member row per (audience, user), found by audience, and by user (a SCIM leaver leaves every audience
/// they are in; a computed index, so the set-based member writes need no new column).
/// </summary>
public static class AudiencesConfiguration
{
    public static void AddAudiences(this WebApplicationBuilder builder) =>
        builder.Services.ConfigureMarten(opts => opts.Schema.For<AudienceMember>().Duplicate(x => x.AudienceId).Index(x => x.UserId));
}
