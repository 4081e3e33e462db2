using System.Net;
using Alba;
using Enrolment.Api.Features.Messaging;
using Enrolment.Api.Features.Mimecast;
using Enrolment.Api.Infrastructure.Production;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Enrolment.Api.Tests;

/// <summary>
/// Production defaults: no published secret outside Development, client addresses behind trusted proxies only,
/// and the drain on SIGTERM. Addresses are from the documentation ranges (RFC 5737); they exist only in the test's
/// HttpContext, no packet goes anywhere.
/// </summary>
public sealed class ProductionTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private const string Proxy = "192.0.2.10";

    // ---------------------------------------------------------------- published secrets

    [Fact]
    public async Task Outside_development_the_service_refuses_to_start_with_the_published_key_encryption_key_and_says_how_to_make_one()
    {
        var refused = await Assert.ThrowsAnyAsync<Exception>(() => StartProduction(kek: null));
        var message = AllMessages(refused);
        Assert.Contains("Mimecast:KeyEncryptionKey is the development key published in appsettings.json", message);
        Assert.Contains("openssl rand -base64 32", message);
        Assert.Contains("Mimecast__KeyEncryptionKey", message);

        var missing = await Assert.ThrowsAnyAsync<Exception>(() => StartProduction(kek: ""));
        Assert.Contains("Mimecast:KeyEncryptionKey is not set", AllMessages(missing));
    }

    [Fact]
    public async Task Outside_development_the_service_starts_with_a_key_of_its_own()
    {
        await using var host = await StartProduction(kek: Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
        Assert.Equal("Production", host.Services.GetRequiredService<IHostEnvironment>().EnvironmentName);
        (await host.Send(HttpMethod.Get, "/health/live", null)).AssertStatus(200);
        (await host.Send(HttpMethod.Get, "/users/alice/enrolments", Auth)).AssertStatus(200);
    }

    [Fact]
    public void Published_database_and_rabbitmq_passwords_are_refused_for_servers_on_other_machines_only()
    {
        static IReadOnlyList<string> Problems(params (string Key, string Value)[] settings) =>
            PublishedDefaults.Find(new ConfigurationBuilder()
                .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))
                    .Append(new("Mimecast:KeyEncryptionKey", Convert.ToBase64String(new byte[32].Select((_, i) => (byte)(i + 1)).ToArray())))
                    .Append(new("Auth:TokenSigningKey", Convert.ToBase64String(new byte[32].Select((_, i) => (byte)(i + 2)).ToArray()))))
                .Build(), [MessagingConfiguration.GuestAccountOnAnotherMachine, MimecastConfiguration.PublishedKeyEncryptionKey]);

        Assert.Empty(Problems(("ConnectionStrings:Enrolment", "Host=127.0.0.1;Database=enrolment;Username=enrolment;Password=enrolment")));
        Assert.Empty(Problems(("ConnectionStrings:Enrolment", "Host=db.internal;Database=enrolment;Username=enrolment;Password=s3cret-of-its-own")));
        var database = Assert.Single(Problems(("ConnectionStrings:Enrolment", "Host=db.internal;Database=enrolment;Username=enrolment;Password=enrolment")));
        Assert.Contains("ConnectionStrings__Enrolment", database);
        Assert.Contains("db.internal", database);

        Assert.Empty(Problems(("Bus:Transport", "rabbitmq"), ("Bus:RabbitMq:Uri", "amqp://guest:guest@127.0.0.1:5672")));
        Assert.Empty(Problems(("Bus:Transport", "postgresql"), ("Bus:RabbitMq:Uri", "amqp://guest:guest@mq.internal:5672")));
        var rabbit = Assert.Single(Problems(("Bus:Transport", "rabbitmq"), ("Bus:RabbitMq:Uri", "amqp://guest:guest@mq.internal:5672")));
        Assert.Contains("Bus__RabbitMq__Uri", rabbit);
    }

    private Task<IAlbaHost> StartProduction(string? kek, string? tokenSigningKey = "") => AppFixture.StartHost(transitions: false, b =>
    {
        b.UseEnvironment("Production");
        if (kek is not null) b.UseSetting("Mimecast:KeyEncryptionKey", kek);
        // "": a key of its own (the tests of the key-encryption key are not about this one); null: the published default.
        if (tokenSigningKey is not null)
            b.UseSetting("Auth:TokenSigningKey", tokenSigningKey.Length > 0 ? tokenSigningKey : Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
    });

    [Fact]
    public async Task Outside_development_the_service_refuses_to_sign_access_tokens_with_the_published_key()
    {
        var own = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        var refused = await Assert.ThrowsAnyAsync<Exception>(() => StartProduction(kek: own, tokenSigningKey: null));
        var message = AllMessages(refused);
        Assert.Contains("Auth:TokenSigningKey is the development key published in appsettings.json", message);
        Assert.Contains("Auth__TokenSigningKey", message);
    }

    private static string AllMessages(Exception e) =>
        e is AggregateException a ? string.Join("\n", a.InnerExceptions.Select(AllMessages)) : e.Message + (e.InnerException is { } inner ? "\n" + AllMessages(inner) : "");

    // ---------------------------------------------------------------- proxies

    [Fact]
    public async Task Behind_a_trusted_proxy_failed_sign_ins_are_counted_per_real_client_so_one_client_cannot_lock_out_another()
    {
        await using var host = await AppFixture.StartHost(transitions: false, b => b.UseSetting("Proxies:KnownProxies:0", Proxy));
        var wrong = Basic(TenantId, "es_wrong" + new string('x', 40));
        for (var i = 0; i < 10; i++)
            (await From(host, Proxy, wrong, forwardedFor: "198.51.100.7")).AssertStatus(401);
        // That client is blocked, even with the right secret...
        var blocked = (await From(host, Proxy, Auth, forwardedFor: "198.51.100.7")).AssertProblem(429);
        // ...another client behind the same proxy is not.
        (await From(host, Proxy, Auth, forwardedFor: "198.51.100.8")).AssertStatus(200);
        Assert.NotNull(blocked);

        // A peer that is not the proxy is the client itself: its X-Forwarded-For cannot frame someone else.
        for (var i = 0; i < 10; i++)
            (await From(host, "203.0.113.5", wrong, forwardedFor: "198.51.100.9")).AssertStatus(401);
        (await From(host, "203.0.113.5", Auth, forwardedFor: "198.51.100.10")).AssertProblem(429);
        (await From(host, Proxy, Auth, forwardedFor: "198.51.100.9")).AssertStatus(200);
    }

    [Fact]
    public async Task With_no_trusted_proxy_configured_a_forged_x_forwarded_for_changes_nothing()
    {
        // The shared host: Proxies not configured (the default), so nobody is trusted, loopback included.
        var wrong = Basic(TenantId, "es_wrong" + new string('y', 40));
        for (var i = 0; i < 10; i++)
            (await From(Host, "203.0.113.9", wrong, forwardedFor: $"198.51.100.{20 + i}")).AssertStatus(401);
        (await From(Host, "203.0.113.9", Auth, forwardedFor: "198.51.100.99")).AssertProblem(429);
        (await From(Host, "127.0.0.1", wrong, forwardedFor: "198.51.100.50")).AssertStatus(401);
        // The loopback peer's failure was counted against 127.0.0.1, not against the address it named.
        for (var i = 0; i < 10; i++)
            (await From(Host, "198.51.100.50", wrong)).AssertStatus(401);
        (await From(Host, "198.51.100.50", Auth)).AssertProblem(429);
    }

    private static async Task<ApiResponse> From(IAlbaHost host, string peer, string authorization, string? forwardedFor = null)
    {
        var result = await host.Scenario(s =>
        {
            s.Get.Url("/users/alice/enrolments");
            s.WithRequestHeader("Authorization", authorization);
            if (forwardedFor is not null) s.WithRequestHeader("X-Forwarded-For", forwardedFor);
            s.ConfigureHttpContext(c => c.Connection.RemoteIpAddress = IPAddress.Parse(peer));
            s.IgnoreStatusCode();
        });
        return new ApiResponse(result.Context.Response.StatusCode, result.Context.Response.Headers, await result.ReadAsTextAsync());
    }

    // ---------------------------------------------------------------- shutdown

    [Fact]
    public async Task On_shutdown_readiness_turns_503_at_once_requests_are_served_through_the_drain_delay_then_refused_with_503()
    {
        var host = await AppFixture.StartHost(transitions: false, b => b.UseSetting("Shutdown:DrainDelay", "00:00:04"));
        try
        {
            (await host.Send(HttpMethod.Get, "/health/ready", null)).AssertStatus(200);
            // What the host runs on SIGTERM before it stops Kestrel (called directly: a stopped TestServer takes no requests at all).
            var drain = host.Services.GetServices<IHostedService>().OfType<IHostedLifecycleService>().Single(s => s.GetType().Name == "DrainOnStop");
            var signalled = System.Diagnostics.Stopwatch.StartNew();
            var draining = drain.StoppingAsync(CancellationToken.None);
            var ready = (await host.Send(HttpMethod.Get, "/health/ready", null)).AssertStatus(503);
            Assert.Contains("shutting down", ready.Body);
            // During the drain delay requests are still served: a load balancer has not noticed yet.
            var served = await host.Send(HttpMethod.Get, "/users/alice/enrolments", Auth);
            Assert.True(served.Status == 200 || signalled.Elapsed > TimeSpan.FromSeconds(4), $"Within the drain delay a request is served: {served}");

            // After it nothing new is started: 503, Retry-After, Connection: close, and nothing written.
            await draining;
            var refused = await host.Send(HttpMethod.Post, "/completions", Auth,
                Scenarios.ToJson(new { completionId = "late-1", userId = "alice", contentId = "c1", completedAt = BusTest.Now() }));
            Assert.True(signalled.Elapsed >= TimeSpan.FromSeconds(4), "Refused only after the drain delay");
            Assert.Equal("shutting-down", refused.AssertProblem(503)["code"]!.GetValue<string>());
            Assert.Equal("1", refused.Headers.RetryAfter.ToString());
            Assert.Equal("close", refused.Headers.Connection.ToString());
            await using var session = Host.Services.GetRequiredService<Marten.IDocumentStore>().QuerySession(TenantId);
            Assert.Null(await session.LoadAsync<Enrolment.Api.Features.Completions.CompletionRecord>("late-1"));
        }
        finally
        {
            await host.DisposeAsync();
        }
    }
}
