using Enrolment.Api.Features.Messaging;
using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Alba;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Contracts;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using NodaTime;
using Npgsql;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Wolverine;
using Wolverine.Marten.Publishing;
using Wolverine.Postgresql;
using Wolverine.Runtime;
using Xunit.Abstractions;

namespace Enrolment.Api.Tests;

[CollectionDefinition(Name)]
public sealed class BusCollection
{
    public const string Name = "bus";
}

/// <summary>A service host on a freshly reset database, with one tenant and an all-scopes secret.</summary>
public abstract class BusFixture : IAsyncLifetime
{
    public const string Tenant = "eu-west-2_BusTenant1";
    public IAlbaHost Service { get; private set; } = null!;
    public string Auth { get; private set; } = "";
    protected readonly List<IAsyncDisposable> Disposables = [];

    public abstract Task InitializeAsync();

    public virtual async Task DisposeAsync()
    {
        for (var i = Disposables.Count - 1; i >= 0; i--)
        {
            try { await Disposables[i].DisposeAsync(); }
            catch { /* a failed stop must not hide the test results */ }
        }
    }

    protected async Task StartService(Action<IWebHostBuilder>? configure = null)
    {
        // The PostgreSQL server is shared with other test runs: keep this file's connection pools small.
        Service = await AppFixture.StartHost(transitions: false, b =>
        {
            b.UseSetting("ConnectionStrings:Enrolment", SmallPool(AppFixture.ConnectionString, 20));
            configure?.Invoke(b);
        });
        Disposables.Add(Service);
        await TestData.Reset(Service.Services);
        Auth = await TestTenants.CreateWithAllScopes(Service.Services, Tenant);
    }

    public static string SmallPool(string connectionString, int max) =>
        new NpgsqlConnectionStringBuilder(connectionString) { MaxPoolSize = max }.ConnectionString;
}

/// <summary>The service on the embedded default bus, and a second Wolverine application listening to its events queue.</summary>
public sealed class EmbeddedBusFixture : BusFixture
{
    public ReceivedBusMessages Consumer { get; } = new();

    public override async Task InitializeAsync()
    {
        await StartService();
        // Every other test of the run also publishes to this queue, and nothing consumes it: start from an empty
        // queue so the consumer does not have to drain thousands of older events first.
        await using (var connection = new NpgsqlConnection(AppFixture.ConnectionString))
        {
            await connection.OpenAsync();
            await using var purge = new NpgsqlCommand("delete from wolverine_queues.wolverine_queue_enrolment_events", connection);
            await purge.ExecuteNonQueryAsync();
        }
        var host = await Microsoft.Extensions.Hosting.Host.CreateDefaultBuilder()
            .ConfigureLogging(l => l.ClearProviders())
            .UseWolverine(opts =>
            {
                opts.ApplicationAssembly = typeof(EmbeddedBusFixture).Assembly;
                opts.UseRuntimeCompilation();
                opts.Durability.Mode = DurabilityMode.Solo;
                // Its own envelope storage, the service's queue tables.
                opts.UsePostgresqlPersistenceAndTransport(SmallPool(AppFixture.ConnectionString, 5), "bus_consumer_test", transportSchema: "wolverine_queues");
                // The consumer's own choice: poll the queue every 200 ms when idle (Wolverine's default is 5 s).
                opts.ListenToPostgresqlQueue("enrolment_events").PollingInterval(TimeSpan.FromMilliseconds(200));
                opts.Discovery.DisableConventionalDiscovery().IncludeType(typeof(BusTestConsumer));
                opts.UseSystemTextJsonForSerialization(Json.Configure);
                opts.Services.AddSingleton(Consumer);
            })
            .StartAsync();
        Disposables.Add(new StoppingHost(host));
    }

    private sealed class StoppingHost(IHost host) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await host.StopAsync();
            host.Dispose();
        }
    }
}

/// <summary>The service with Bus:Transport=rabbitmq, in a RabbitMQ virtual host created for this class and deleted after.</summary>
public class RabbitMqBusFixture : BusFixture
{
    private const string Broker = "127.0.0.1";
    private const string ManagementApi = "http://127.0.0.1:15672/api";
    private readonly string _vhost = $"enrolment-bus-test-{Guid.NewGuid():N}";
    public ConnectionFactory Factory { get; private set; } = null!;

    public override async Task InitializeAsync()
    {
        using (var http = Management())
        {
            var created = await http.PutAsync($"{ManagementApi}/vhosts/{_vhost}", new StringContent("{}", Encoding.UTF8, "application/json"));
            if (!created.IsSuccessStatusCode)
                throw new InvalidOperationException($"Creating RabbitMQ vhost {_vhost} through {ManagementApi}: {(int)created.StatusCode} {await created.Content.ReadAsStringAsync()}. Is ./build/rabbitmq.sh run?");
            var permitted = await http.PutAsync($"{ManagementApi}/permissions/{_vhost}/guest",
                new StringContent("""{"configure":".*","write":".*","read":".*"}""", Encoding.UTF8, "application/json"));
            if (!permitted.IsSuccessStatusCode) throw new InvalidOperationException($"Granting guest on {_vhost}: {(int)permitted.StatusCode}");
        }
        await StartService(b =>
        {
            b.UseSetting("Bus:Transport", "rabbitmq");
            b.UseSetting("Bus:RabbitMq:Uri", $"amqp://guest:guest@{Broker}:5672/{_vhost}");
            ConfigureService(b);
        });
        Factory = new ConnectionFactory { HostName = Broker, Port = 5672, UserName = "guest", Password = "guest", VirtualHost = _vhost };
    }

    /// <summary>For a fixture that needs more of the service (TracingTests adds an exporter).</summary>
    protected virtual void ConfigureService(IWebHostBuilder builder) { }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        try { using var http = Management(); await http.DeleteAsync($"{ManagementApi}/vhosts/{_vhost}"); }
        catch { /* best effort */ }
    }

    private static HttpClient Management()
    {
        var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("guest:guest")));
        return http;
    }
}
