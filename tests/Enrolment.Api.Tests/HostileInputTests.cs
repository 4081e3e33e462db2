using System.Text.Json.Nodes;
using Alba;
using Enrolment.Api.Features.Mimecast;
using Enrolment.Api.Infrastructure;
using Enrolment.Reliability;
using Marten;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using NodaTime;
using Npgsql;

namespace Enrolment.Api.Tests;

/// <summary>The defects the hostile-input scenario (tests/Enrolment.Reliability) found, each pinned by the rule it broke.</summary>
public sealed class HostileInputTests(AppFixture fixture) : ScenarioTest(fixture)
{
    [Fact]
    public async Task A_NUL_character_in_a_title_is_422_and_stores_nothing_not_a_503_database_outage()
    {
        // PostgreSQL cannot store U+0000 in jsonb: the commit failed and the failure was reported as "database unavailable".
        var response = await Put("/content/c1", """{"title":"a\u0000b"}""");

        var problem = response.AssertProblem(422);
        Assert.NotNull(problem["errors"]?["title"]);
        (await Get("/content/c1")).AssertProblem(404);
    }

    [Theory]
    [InlineData("22P05", 422)] // untranslatable character: a value the request carried
    [InlineData("22008", 422)] // datetime field overflow
    [InlineData("23503", 500)] // foreign key violation: our fault, and retrying will not help
    [InlineData("42P01", 500)] // undefined table
    [InlineData("57P01", 503)] // admin shutdown: the database is going away
    [InlineData("53300", 503)] // too many connections
    [InlineData("08006", 503)] // connection failure
    public async Task A_PostgreSQL_error_about_the_statement_is_not_reported_as_an_outage(string sqlState, int expected)
    {
        var error = new PostgresException("boom", "ERROR", "ERROR", sqlState);
        // As Marten hands it over: wrapped.
        var status = await Map(new InvalidOperationException("Marten command failed", error));
        Assert.Equal(expected, status);
    }

    [Fact]
    public async Task A_lost_connection_is_still_an_outage() =>
        Assert.Equal(503, await Map(new NpgsqlException("Exception while reading from stream", new System.Net.Sockets.SocketException(104))));

    private async Task<int> Map(Exception exception)
    {
        using var scope = Host.Services.CreateScope();
        var context = new DefaultHttpContext { RequestServices = scope.ServiceProvider };
        context.Response.Body = new MemoryStream();
        Assert.True(await new ExceptionMapper(NullLogger<ExceptionMapper>.Instance).TryHandleAsync(context, exception, CancellationToken.None));
        context.Response.Body.Position = 0;
        var problem = JsonNode.Parse(context.Response.Body)!;
        Assert.Equal(context.Response.StatusCode, problem["status"]!.GetValue<int>());
        return context.Response.StatusCode;
    }

    [Fact]
    public async Task Headers_over_the_documented_limit_are_a_431_problem_document()
    {
        // Kestrel's own limit answers an empty 431 before any middleware; the documented limit answers like every other error.
        var tooLarge = await Send(new string('h', RequestLimits.DefaultMaxRequestHeadersBytes));
        tooLarge.AssertProblem(431);

        (await Send(new string('h', RequestLimits.DefaultMaxRequestHeadersBytes / 2))).AssertStatus(200);
    }

    private async Task<ApiResponse> Send(string header)
    {
        var result = await Host.Scenario(s =>
        {
            s.Get.Url("/users/u1/enrolments");
            s.WithRequestHeader("Authorization", Auth);
            s.WithRequestHeader("X-Big", header);
            s.IgnoreStatusCode();
        });
        return new ApiResponse(result.Context.Response.StatusCode, result.Context.Response.Headers, await result.ReadAsTextAsync());
    }

    [Theory]
    [InlineData("""{"data":[{"userId":"a\udc00b"}]}""")]
    [InlineData("""{"data":[{"user\ud800Id":"u1"}]}""")]
    [InlineData("""{"data":[],"meta":{"pagination":{"pageToken":"\ud800"}}}""")]
    public async Task A_Mimecast_body_with_an_escaped_lone_surrogate_is_a_400_malformed_request_not_a_500(string body)
    {
        // JsonNode.Parse accepts the escape; reading the string threw InvalidOperationException in the handler (a 500).
        MimecastKeySet key;
        await using (var session = await Host.Services.GetRequiredService<IDocumentStore>().OpenHome())
        {
            var issued = MimecastKeys.Issue(session, Host.Services.GetRequiredService<MimecastSecretCipher>(), TenantId, SystemClock.Instance.GetCurrentInstant());
            await session.SaveChangesAsync();
            key = new MimecastKeySet(issued.AccessKey, issued.SecretKey, issued.AppId, issued.AppKey);
        }
        using var client = Host.Server.CreateClient();

        var reply = await client.Exchange(SecurityProbes.MimecastRequest(key, body), CancellationToken.None);

        Assert.True(reply.Status == 400, reply.ToString());
        var envelope = JsonNode.Parse(reply.Body)!;
        Assert.Equal(400, envelope["meta"]!["status"]!.GetValue<int>());
        Assert.Equal(MimecastCodes.MalformedRequest, envelope["fail"]![0]!["errors"]![0]!["code"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("/content/c1", """{"title":1}""", "$.title")]
    [InlineData("/audiences/a1/members", """{"userIds":"u1"}""", "$.userIds")]
    [InlineData("/content/c1", "[]", "$")]
    public async Task A_value_of_the_wrong_type_is_a_400_that_names_the_JSON_path_but_no_NET_type(string url, string body, string path)
    {
        // System.Text.Json's message said "could not be converted to Enrolment.Api.Features.Content.PutContentRequest".
        var problem = (await Put(url, body)).AssertProblem(400);

        var detail = problem.Str("detail");
        Assert.Contains($"Path: {path} ", detail);
        Assert.DoesNotContain("Enrolment.", detail);
        Assert.DoesNotContain("System.", detail);
    }

    [Fact]
    public async Task An_unknown_OpenAPI_document_is_a_404_problem_document()
    {
        // It was a text/plain 404 from the OpenAPI endpoint itself.
        (await Get("/openapi/v2.json")).AssertProblem(404);
        (await Get("/openapi/v1.json")).AssertStatus(200);
    }
}
