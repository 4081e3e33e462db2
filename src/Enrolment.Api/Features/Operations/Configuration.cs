using Marten;

namespace Enrolment.Api.Features.Operations;

/// <summary>Fan-out operations: the batches' done markers, found by operation.</summary>
public static class OperationsConfiguration
{
    public static void AddOperations(this WebApplicationBuilder builder) =>
        builder.Services.ConfigureMarten(opts =>
        {
            opts.Schema.For<FanOutBatchDone>().Duplicate(x => x.OperationId);
            // Known up front, not at first use: placing a tenant in a shard (`tenants add`, any process) creates its
            // partition only in the tables of the document types the process knows.
            opts.Schema.For<FanOutOperation>();
        });
}
