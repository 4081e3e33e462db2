using Enrolment.Api.Features.Assignments;
using Enrolment.Api.Features.Audiences;
using Enrolment.Api.Features.Audit;
using Enrolment.Api.Features.Changes;
using Enrolment.Api.Features.Completions;
using Enrolment.Api.Features.Compliance;
using Enrolment.Api.Features.Content;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Features.Messaging;
using Enrolment.Api.Features.Mimecast;
using Enrolment.Api.Features.Operations;
using Enrolment.Api.Features.Pages;
using Enrolment.Api.Features.Scim;
using Enrolment.Api.Features.Summaries;
using Enrolment.Api.Features.Tenants;
using Enrolment.Api.Features.Time;
using Enrolment.Api.Features.Tokens;
using Enrolment.Api.Features.Webhooks;
using Enrolment.Api.Infrastructure;
using JasperFx;
using Wolverine.Http;

// The host: what every feature stands on (Infrastructure), then each feature's own Configuration.cs.
var builder = WebApplication.CreateBuilder(args);
var mode = RunMode.From(args);
builder.AddHosting(mode);
builder.AddPersistence();
builder.AddMessaging();

builder.AddTenants();
builder.AddContent();
builder.AddAudiences();
builder.AddAssignments();
builder.AddOperations();
builder.AddEnrolments();
builder.AddCompletions();
builder.AddActors();
builder.AddTimeDrivenTransitions(mode);
builder.AddChangeFeed(mode);
builder.AddSummaries(mode);
builder.AddAudit(mode);
builder.AddWebhooks(mode);
builder.AddMimecast();
builder.AddTokens();
builder.AddScim();

var app = builder.Build();
app.UseScimErrors();     // /scim/v2 answers SCIM error documents, also for what the edge refuses
app.UseEdge();
app.UsePages();           // /app/ is public: before authentication
app.UseAccessControl();
app.UseReadLatency();     // API reads timed, so background work can yield to them (Features/Time)
app.MapOperatorEndpoints();
app.MapMimecast();
app.MapWolverineEndpoints(opts =>
{
    Hosting.Configure(opts);
    opts.StampActors();
});

return await app.RunJasperFxCommands(args);

/// <summary>The entry point, visible to Alba tests.</summary>
public partial class Program;
