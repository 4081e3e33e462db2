using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Sql;
using Marten;

namespace Enrolment.Api.Features.Audit;

/// <summary>The audit chain: its table and trigger on mt_events, the checkpoints and the service that takes them.</summary>
public static class AuditConfiguration
{
    public static void AddAudit(this WebApplicationBuilder builder, RunMode mode)
    {
        builder.Services.Configure<AuditSettings>(builder.Configuration.GetSection("Audit"));
        builder.Services.AddSingleton<AuditTables>();
        builder.Services.AddSingleton<AuditCheckpoints>();
        if (mode.IsService) builder.Services.AddHostedService<AuditCheckpointService>();
        builder.Services.ConfigureMarten(opts =>
        {
            AuditChainSql.Configure(opts);
            opts.Schema.For<AuditCheckpoint>().Identity(c => c.Id);
        });
    }
}
