using Marten;

namespace Enrolment.Api.Features.Audiences;

/// <summary>Audiences: one member row per (audience, user), found by audience.</summary>
public static class AudiencesConfiguration
{
    public static void AddAudiences(this WebApplicationBuilder builder) =>
        builder.Services.ConfigureMarten(opts => opts.Schema.For<AudienceMember>().Duplicate(x => x.AudienceId));
}
