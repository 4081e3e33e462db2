using Alba;
using Enrolment.Api.Infrastructure.Auth;
using JasperFx;
using JasperFx.CommandLine;
using Marten;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using NodaTime;
using Wolverine;

// Tests share one database and reset it: collections must not run at the same time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Enrolment.Api.Tests;

/// <summary>
/// One real host (Program, via Alba) for the whole API test collection, on the real PostgreSQL that
/// ./build/test.sh starts (database enrolment_test unless ENROLMENT_TEST_CONNECTION says otherwise).
/// </summary>
public sealed class AppFixture : IAsyncLifetime
{
    public static string ConnectionString =>
        Environment.GetEnvironmentVariable("ENROLMENT_TEST_CONNECTION")
        ?? "Host=127.0.0.1;Port=5432;Database=enrolment_test;Username=enrolment;Password=enrolment;Timeout=5;Command Timeout=60";

    public IAlbaHost Host { get; private set; } = null!;

    // The shared host applies no time-driven transitions: the time tests start hosts of their own for that.
    public async Task InitializeAsync() => Host = await StartHost(transitions: false);

    public static async Task<IAlbaHost> StartHost(bool transitions, Action<IWebHostBuilder>? configure = null)
    {
        JasperFxEnvironment.AutoStartHost = true;
        var host = await AlbaHost.For<Program>(builder =>
        {
            builder.UseEnvironment("Development");
            builder.UseSetting("ConnectionStrings:Enrolment", ConnectionString);
            builder.UseSetting("Auth:MaxFailuresPerClientPerMinute", "10");
            builder.UseSetting("Transitions:Enabled", transitions ? "true" : "false");
            builder.UseSetting("Transitions:PollInterval", "00:00:00.200");
            // No webhook sender in the shared hosts: WebhookTests start hosts of their own that deliver (two senders on one
            // database with different settings would take each other's deliveries).
            builder.UseSetting("Webhooks:Enabled", "false");
            // No background audit checkpoints either: tests take them (AuditChecks, AuditTests) on data they know. A round
            // that a test's reset overtook would write a checkpoint of the data before the reset into the next test's, and
            // form-2 checkpoints are each verified, so it would show as tampering.
            builder.UseSetting("Audit:CheckpointsEnabled", "false");
            // One node: Marten's own daemon on it (Solo), whose coordinator the tests pause around each store reset and
            // rebuild through. The service's default, Distributed (Wolverine places each agent), registers none.
            builder.UseSetting("Projections:DaemonMode", "Solo");
            builder.ConfigureServices(services => services.RunWolverineInSoloMode());
            configure?.Invoke(builder);
        });
        // Every answer a test receives must be one the OpenAPI document describes.
        OpenApi.OpenApiContract.Enforce(host);
        return host;
    }

    public async Task DisposeAsync() => await Host.DisposeAsync();
}

[CollectionDefinition(Name)]
public sealed class ApiCollection : ICollectionFixture<AppFixture>
{
    public const string Name = "api";
}

/// <summary>
/// Base of every API test: the database is reset before each test, and a fresh tenant with a read, a write and an
/// all-scopes secret is created, so tests never see each other's data.
/// </summary>
[Collection(ApiCollection.Name)]
public abstract class ApiTest(AppFixture fixture) : IAsyncLifetime
{
    protected IAlbaHost Host => fixture.Host;
    protected const string TenantId = "eu-west-2_TestTenant1";
    protected string AllSecret { get; private set; } = "";
    protected string ReadSecret { get; private set; } = "";
    protected string WriteSecret { get; private set; } = "";

    public virtual async Task InitializeAsync()
    {
        await TestData.Reset(Host.Services);
        (AllSecret, ReadSecret, WriteSecret) = await CreateTenant(TenantId);
    }

    public virtual Task DisposeAsync() => Task.CompletedTask;

    /// <summary>Creates a tenant directly in the store (the CLI is tested separately) and returns its secrets.</summary>
    protected async Task<(string All, string Read, string Write)> CreateTenant(string tenantId)
    {
        var secrets = await TestTenants.Create(Host.Services, tenantId, Scopes.All, Scopes.Read, Scopes.Write);
        return (secrets[0], secrets[1], secrets[2]);
    }

    protected static string Basic(string tenantId, string secret) => TestTenants.Basic(tenantId, secret);
}
