using Alba;

namespace Enrolment.Api.Tests;

/// <summary>How /app/ is served (the pages themselves are tested in a browser by PagesBrowserTests).</summary>
public sealed class PagesServingTests(AppFixture fixture) : ApiTest(fixture)
{
    [Fact]
    public async Task The_pages_are_served_without_credentials_with_a_policy_that_allows_only_this_service()
    {
        var result = await Host.Scenario(s => { s.Get.Url("/app/"); s.StatusCodeShouldBeOk(); s.ContentTypeShouldBe("text/html"); });
        Assert.Contains("Sign in", result.ReadAsText());
        var policy = result.Context.Response.Headers.ContentSecurityPolicy.ToString();
        Assert.Contains("default-src 'none'", policy);
        Assert.Contains("script-src 'self'", policy);
        Assert.Contains("connect-src 'self'", policy);
        Assert.Equal("nosniff", result.Context.Response.Headers.XContentTypeOptions.ToString());

        await Host.Scenario(s => { s.Get.Url("/app/assignment.js"); s.StatusCodeShouldBeOk(); s.ContentTypeShouldBe("text/javascript"); });
        await Host.Scenario(s => { s.Get.Url("/app"); s.StatusCodeShouldBe(302); s.Header("Location").SingleValueShouldEqual("/app/"); });
        await Host.Scenario(s => { s.Get.Url("/app/no-such-page.html"); s.StatusCodeShouldBe(404); });
    }

    [Fact]
    public async Task A_service_built_without_its_pages_says_so_with_a_503_problem_document()
    {
        await using var host = await AppFixture.StartHost(transitions: false, b => b.UseSetting("Pages:Root", Path.Combine(Path.GetTempPath(), $"no-pages-{Guid.NewGuid():N}")));
        var result = await host.Scenario(s => { s.Get.Url("/app/"); s.StatusCodeShouldBe(503); s.ContentTypeShouldBe("application/problem+json"); });
        Assert.Contains("./build/pages.sh", result.ReadAsText());
        // The API is unaffected.
        await host.Scenario(s => { s.Get.Url("/health/live"); s.StatusCodeShouldBeOk(); });
    }
}
