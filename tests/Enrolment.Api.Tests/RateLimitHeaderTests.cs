using Alba;
using Microsoft.AspNetCore.Hosting;

namespace Enrolment.Api.Tests;

/// <summary>Every authenticated answer says the tenant's limit, what is left of it and when it refills (IETF httpapi draft).</summary>
public sealed class RateLimitHeaderTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private static (int Limit, int Remaining, int Reset) Headers(ApiResponse r)
    {
        Assert.True(r.Headers.ContainsKey("RateLimit-Limit"), $"No RateLimit-Limit on {r}");
        return (int.Parse(r.Headers["RateLimit-Limit"]!), int.Parse(r.Headers["RateLimit-Remaining"]!), int.Parse(r.Headers["RateLimit-Reset"]!));
    }

    [Fact]
    public async Task Authenticated_answers_carry_the_limit_and_unauthenticated_ones_do_not()
    {
        var ok = Headers((await Get("/changes")).AssertStatus(200));
        Assert.Equal(1000, ok.Limit);
        // What is left when the answer starts: the bucket refills whole every second, so it can be full again already.
        Assert.InRange(ok.Remaining, 0, 1000);
        Assert.Equal(1, ok.Reset);
        // Errors of an authenticated client carry them too: a 404, a 422, a 403.
        foreach (var (response, status) in new[]
                 {
                     (await Get($"/assignments/{Guid.NewGuid()}"), 404), (await Get("/changes?limit=0"), 422),
                     (await Post("/completions/bulk", new { items = new object[0] }, Basic(TenantId, ReadSecret)), 403),
                 })
        {
            response.AssertProblem(status);
            Headers(response);
        }
        Assert.False((await Get("/changes", auth: "Basic bm9ib2R5Om5vdGhpbmc=")).Headers.ContainsKey("RateLimit-Limit"));
        Assert.False((await Host.Send(HttpMethod.Get, "/health/live", null)).Headers.ContainsKey("RateLimit-Limit"));
        Assert.False((await Get("/changes")).Headers.ContainsKey("X-RateLimit-Limit"));
    }

    [Fact]
    public async Task Remaining_counts_down_to_zero_and_the_429_says_so()
    {
        await using var host = await AppFixture.StartHost(transitions: false, b => b.UseSetting("Limits:RequestsPerSecondPerTenant", "5"));
        var responses = new List<ApiResponse>();
        for (var i = 0; i < 8; i++) responses.Add(await host.Send(HttpMethod.Get, "/changes", Auth));
        var first = Headers(responses[0].AssertStatus(200));
        Assert.Equal(5, first.Limit);
        Assert.Equal(4, first.Remaining);
        var limited = responses.First(r => r.Status == 429);
        Assert.Equal(0, Headers(limited).Remaining);
        Assert.Equal("1", limited.Headers.RetryAfter.ToString());
        var remaining = responses.TakeWhile(r => r.Status == 200).Select(r => Headers(r).Remaining).ToList();
        Assert.True(remaining.Zip(remaining.Skip(1)).All(p => p.Second <= p.First), $"Remaining only goes down within a second: {string.Join(",", remaining)}");
    }
}
