using Enrolment.Api.Infrastructure;
using JasperFx;

var builder = WebApplication.CreateBuilder(args);
builder.AddEnrolmentService(args);

var app = builder.Build();
app.UseEnrolmentService();

return await app.RunJasperFxCommands(args);

/// <summary>The entry point, visible to Alba tests.</summary>
public partial class Program;
