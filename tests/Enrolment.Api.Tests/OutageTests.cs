using System.Diagnostics;
using Alba;
using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using NodaTime;

namespace Enrolment.Api.Tests;

[CollectionDefinition(Name)]
public sealed class OutageCollection
{
    public const string Name = "outage";
}

/// <summary>
/// Stops the real PostgreSQL under a running host and starts it again. The test assembly runs collections one at a
/// time, so nothing else is using the database meanwhile.
/// </summary>
[Collection(OutageCollection.Name)]
public sealed class OutageTests
{
    private static async Task<int> Cluster(string action)
    {
        var version = Directory.GetDirectories("/usr/lib/postgresql").Select(Path.GetFileName).OrderBy(v => int.Parse(v!)).Last();
        using var process = Process.Start(new ProcessStartInfo("pg_ctlcluster", [version!, "main", action, "-m", "fast"]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        await process.WaitForExitAsync();
        return process.ExitCode;
    }

    [Fact]
    public async Task Readiness_reports_a_database_outage_requests_fail_fast_with_503_and_the_service_recovers_on_its_own()
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root" || !File.Exists("/usr/bin/pg_ctlcluster"))
            Assert.Fail("This test stops and starts the local PostgreSQL cluster; run it as root on the machine ./build/test.sh set up.");

        await using var host = await AppFixture.StartHost(transitions: true);
        const string tenant = "eu-west-2_OutageTenant1";
        var auth = await TestTenants.CreateWithAllScopes(host.Services, tenant);
        await host.Scenario(s => { s.Get.Url("/users/u1/enrolments"); s.WithRequestHeader("Authorization", auth); s.StatusCodeShouldBeOk(); });

        Assert.Equal(0, await Cluster("stop"));
        try
        {
            await host.Scenario(s => { s.Get.Url("/health/ready"); s.StatusCodeShouldBe(503); });
            await host.Scenario(s => { s.Get.Url("/health/live"); s.StatusCodeShouldBeOk(); });

            var timer = Stopwatch.StartNew();
            var read = await host.Scenario(s =>
            {
                s.Get.Url("/users/u1/enrolments");
                s.WithRequestHeader("Authorization", auth);
                s.StatusCodeShouldBe(503);
            });
            Assert.True(timer.Elapsed < TimeSpan.FromSeconds(15), $"a request during the outage took {timer.Elapsed}; it must fail fast");
            Assert.Equal("application/problem+json", read.Context.Response.ContentType);
            Assert.True(read.Context.Response.Headers.ContainsKey("Retry-After"));
        }
        finally
        {
            Assert.Equal(0, await Cluster("start"));
            // The restart killed every idle pooled connection of this test process (other fixtures' too); drop them,
            // or the next test to borrow one meets "57P01 terminating connection due to administrator command".
            Npgsql.NpgsqlConnection.ClearAllPools();
        }

        var recovered = Stopwatch.StartNew();
        while (true)
        {
            var ready = await host.Scenario(s => { s.Get.Url("/health/ready"); s.IgnoreStatusCode(); });
            if (ready.Context.Response.StatusCode == 200) break;
            Assert.True(recovered.Elapsed < TimeSpan.FromSeconds(30), "readiness did not recover within 30 s of PostgreSQL's return");
            await Task.Delay(250);
        }
        await host.Scenario(s => { s.Get.Url("/users/u1/enrolments"); s.WithRequestHeader("Authorization", auth); s.StatusCodeShouldBeOk(); });
    }
}
