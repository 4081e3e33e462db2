using Enrolment.Api.Infrastructure.Auth;
using Marten;

namespace Enrolment.Api.Features.Tenants;

/// <summary>Tenants: the accounts and their hashed secrets, outside any tenant (authentication reads them first).</summary>
public static class TenantsConfiguration
{
    public static void AddTenants(this WebApplicationBuilder builder) =>
        builder.Services.ConfigureMarten(opts => opts.Schema.For<TenantAccount>().SingleTenanted());
}
