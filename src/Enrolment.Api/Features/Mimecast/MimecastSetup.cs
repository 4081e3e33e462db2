using Marten;

namespace Enrolment.Api.Features.Mimecast;

/// <summary>Wiring of the Mimecast-compatible "get training details" feature: services, Marten mappings, routes.</summary>
public static class MimecastSetup
{
    public static void AddMimecast(this IServiceCollection services, IConfiguration configuration)
    {
        services.ConfigureMarten(opts =>
        {
        });
    }

    public static void MapMimecast(this WebApplication app)
    {
    }
}
