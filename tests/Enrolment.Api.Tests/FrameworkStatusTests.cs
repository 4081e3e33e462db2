namespace Enrolment.Api.Tests;

/// <summary>
/// Statuses ASP.NET Core answers by itself, before any endpoint runs, are problem documents like every other error
/// (PRODUCT.md: "Every error body is an RFC 9457 problem document").
/// </summary>
public sealed class FrameworkStatusTests(AppFixture fixture) : ScenarioTest(fixture)
{
    [Fact]
    public async Task A_method_the_route_does_not_take_is_a_405_problem_document()
    {
        var answer = await Host.Send(HttpMethod.Put, "/completions", Auth, "{}");
        var problem = answer.AssertProblem(405);
        Assert.False(string.IsNullOrEmpty(problem["detail"]?.GetValue<string>()), $"A 405 says which methods the route takes: {answer}");
    }

    [Fact]
    public async Task A_body_that_is_not_json_is_a_415_problem_document()
    {
        var answer = await Host.Scenario(s =>
        {
            s.Post.Text("completionId=c1").ToUrl("/completions");
            s.WithRequestHeader("Authorization", Auth);
            s.IgnoreStatusCode();
        });
        var response = new ApiResponse(answer.Context.Response.StatusCode, answer.Context.Response.Headers, await answer.ReadAsTextAsync());
        response.AssertProblem(415);
    }
}
