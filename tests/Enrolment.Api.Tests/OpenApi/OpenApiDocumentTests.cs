using System.Text.Json.Nodes;

namespace Enrolment.Api.Tests.OpenApi;

/// <summary>What the document must say of every route, whoever adds it.</summary>
public sealed class OpenApiDocumentTests(AppFixture fixture) : ApiTest(fixture)
{
    [Fact]
    public void Every_success_answer_has_a_typed_schema_not_wolverines_IResult_placeholder()
    {
        var document = OpenApiContract.Document(Host);
        var untyped = new List<string>();
        foreach (var (path, item) in document["paths"]!.AsObject())
            foreach (var (method, operation) in item!.AsObject())
                foreach (var (status, response) in operation!["responses"]!.AsObject())
                {
                    if (!status.StartsWith('2')) continue;
                    foreach (var (_, media) in response!["content"]?.AsObject() ?? new JsonObject())
                    {
                        var schema = media!["schema"]?.ToJsonString() ?? "";
                        if (schema.Contains("/IResult\"") || schema is "" or "{}" or "{\"type\":\"object\"}")
                            untyped.Add($"{method.ToUpperInvariant()} {path} {status}: declare it with [ProducesResponseType<T>({status})]");
                    }
                }
        Assert.True(untyped.Count == 0, string.Join("\n", untyped));
    }

    [Fact]
    public void Every_operation_names_its_security_and_a_human_description()
    {
        var document = OpenApiContract.Document(Host);
        Assert.DoesNotContain("/", document["servers"]![0]!["url"]!.GetValue<string>()[^1..]);
        Assert.NotNull(document["components"]!["securitySchemes"]!["basic"]);
        Assert.NotNull(document["components"]!["securitySchemes"]!["mimecast"]);
        foreach (var (path, item) in document["paths"]!.AsObject())
            foreach (var (method, operation) in item!.AsObject())
            {
                Assert.True(operation!["security"] is JsonArray, $"{method} {path} has no security requirement");
                var description = operation["description"]?.GetValue<string>() ?? "";
                Assert.False(description.Length == 0 || System.Text.RegularExpressions.Regex.IsMatch(description, "^[A-Z]+_"),
                    $"{method} {path}: the description '{description}' is not for a person (add [EndpointSummary])");
                // The API page's navigation shows the summary: a short title (OpenApiSetup.Titles), the sentence in the description.
                var summary = operation["summary"]?.GetValue<string>() ?? "";
                Assert.True(summary.Length is > 0 and <= 40 && !summary.EndsWith('.'),
                    $"{method} {path}: the summary '{summary}' is not a short title (add its operationId to OpenApiSetup.Titles)");
                Assert.True(description.Length > summary.Length, $"{method} {path}: the description '{description}' says no more than the title");
            }
    }

    [Fact]
    public async Task Every_route_with_a_json_body_documents_the_415_routing_answers_to_another_content_type()
    {
        // Routing refuses the content type before the endpoint (and authentication) runs; the contract check then holds
        // each answer to the document, and this test to the 415 it must list.
        var document = OpenApiContract.Document(Host);
        var probed = 0;
        foreach (var (path, item) in document["paths"]!.AsObject())
            foreach (var (method, operation) in item!.AsObject())
            {
                if (operation!["requestBody"]?["content"]?["application/json"] is null) continue;
                var url = System.Text.RegularExpressions.Regex.Replace(path, @"\{[^}]+\}", Guid.NewGuid().ToString());
                var result = await Host.Scenario(s =>
                {
                    s.WithRequestHeader("Authorization", Basic(TenantId, AllSecret));
                    (method switch { "put" => s.Put, "patch" => s.Patch, _ => s.Post }).Text("{}").ToUrl(url);
                    s.IgnoreStatusCode();
                });
                var status = result.Context.Response.StatusCode;
                var documented = operation["responses"]!.AsObject().ContainsKey("415");
                Assert.True(status != 415 || documented, $"{method.ToUpperInvariant()} {path} answered a text/plain body 415, which it does not document.");
                if (documented) Assert.Equal(415, status);
                probed++;
            }
        Assert.True(probed >= 8, $"only {probed} routes with a JSON body in the document");
    }
}
