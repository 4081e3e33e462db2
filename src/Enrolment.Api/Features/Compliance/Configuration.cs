using Wolverine;
using Wolverine.Http;

namespace Enrolment.Api.Features.Compliance;

/// <summary>Compliance: every event names its actor, stamped on the session by middleware on handlers and endpoints that write.</summary>
public static class ComplianceConfiguration
{
    public static void AddActors(this WebApplicationBuilder builder) =>
        builder.Services.ConfigureWolverine(EventActors.Configure);

    /// <summary>The HTTP side, given to MapWolverineEndpoints.</summary>
    public static void StampActors(this WolverineHttpOptions opts) => EventActors.Configure(opts);
}
