using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Api.Infrastructure.Auth;
using Marten;

namespace Enrolment.Api.Features.Tenants;

/// <summary>Tenants: the accounts and their hashed secrets, outside any tenant (authentication reads them first).</summary>
public static class TenantsConfiguration
{
    // Registry documents, one table for every tenant (in the home shard). DoNotPartition: sharded tenancy LIST-partitions
    // every tenanted table by tenant_id, and a single-tenanted table has no such column.
    public static void AddTenants(this WebApplicationBuilder builder)
    {
        builder.Services.ConfigureMarten(opts =>
        {
            opts.Schema.For<TenantAccount>().SingleTenanted().DoNotPartition();
            // `tenants move`: the write gate every tenant's unit of work passes, and the move's own tables.
            TenantFence.Configure(opts);
            opts.Listeners.Add(new TenantWriteGate());
        });
        builder.Services.AddSingleton<TenantMove>();
    }
}
