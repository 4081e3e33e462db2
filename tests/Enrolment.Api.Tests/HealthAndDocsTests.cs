using Alba;

namespace Enrolment.Api.Tests;

public sealed class HealthAndDocsTests(AppFixture fixture) : ApiTest(fixture)
{
    [Fact]
    public async Task Liveness_answers_200_without_credentials()
    {
        await Host.Scenario(s => { s.Get.Url("/health/live"); s.StatusCodeShouldBeOk(); });
    }

    [Fact]
    public async Task Readiness_answers_200_when_postgresql_answers()
    {
        var result = await Host.Scenario(s => { s.Get.Url("/health/ready"); s.StatusCodeShouldBeOk(); });
        Assert.Contains("\"postgresql\":{\"status\":\"healthy\"", result.ReadAsText());
    }

    [Fact]
    public async Task OpenApi_document_lists_the_contract_routes()
    {
        var result = await Host.Scenario(s => { s.Get.Url("/openapi/v1.json"); s.StatusCodeShouldBeOk(); });
        var text = result.ReadAsText();
        foreach (var route in new[] { "/assignments/{assignmentId}/enrolments/{enrolmentId}", "/completions", "/audiences/{audienceId}/members", "/users/{userId}/enrolments" })
            Assert.Contains(route, text);
    }

    [Fact]
    public async Task Interactive_docs_page_is_served()
    {
        await Host.Scenario(s => { s.Get.Url("/docs/"); s.StatusCodeShouldBeOk(); });
    }
}
