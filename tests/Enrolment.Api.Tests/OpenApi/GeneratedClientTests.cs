using System.Net.Http.Headers;
using System.Reflection;
using System.Runtime.Loader;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using NSwag.CodeGeneration.CSharp;

namespace Enrolment.Api.Tests.OpenApi;

/// <summary>
/// An integrator's first hour: generate a C# client from the served /openapi/v1.json (NSwag), compile it with the
/// README walk-through written against it (ClientWalkThrough/WalkThrough.cs), and run that against the service.
/// </summary>
public sealed class GeneratedClientTests(AppFixture fixture) : ApiTest(fixture)
{
    [Fact]
    public async Task A_client_generated_from_the_document_runs_the_readme_walk_through()
    {
        using var documentClient = Host.Server.CreateClient();
        var document = await NSwag.OpenApiDocument.FromJsonAsync(await documentClient.GetStringAsync("/openapi/v1.json"));
        var settings = new CSharpClientGeneratorSettings { ClassName = "EnrolmentClient", UseBaseUrl = false, GenerateClientInterfaces = false, GenerateOptionalParameters = true };
        settings.CSharpGeneratorSettings.Namespace = "Generated";
        settings.CSharpGeneratorSettings.JsonLibrary = NJsonSchema.CodeGeneration.CSharp.CSharpJsonLibrary.SystemTextJson;
        var clientCode = new CSharpClientGenerator(document, settings).GenerateFile();
        var walkThrough = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "OpenApi", "ClientWalkThrough", "WalkThrough.cs"));

        var assembly = Compile(clientCode, walkThrough);
        var run = assembly.GetType("ClientWalkThrough.WalkThrough")!.GetMethod("Run")!;

        using var http = Host.Server.CreateClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{TenantId}:{AllSecret}")));
        List<string> seen;
        try { seen = await (Task<List<string>>)run.Invoke(null, [http])!; }
        catch (TargetInvocationException e) { throw e.InnerException!; }

        var text = string.Join("\n", seen);
        Assert.Contains("enrolments alice:open,bob:open,carol:open", text);
        Assert.Contains("alice complete enrolment.completed c-1", text);
        Assert.Contains("bob archived", text);
        Assert.Contains("carol left 1", text);
        Assert.Contains("assignment", text);
        Assert.Matches(@"events enrolment\.assigned,.*enrolment\.completed", text);
    }

    private static Assembly Compile(params string[] sources)
    {
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Select(path => MetadataReference.CreateFromFile(path));
        var compilation = CSharpCompilation.Create("GeneratedEnrolmentClient",
            sources.Select(s => CSharpSyntaxTree.ParseText(s, new CSharpParseOptions(LanguageVersion.Latest))),
            references, new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Disable));
        using var image = new MemoryStream();
        var emitted = compilation.Emit(image);
        var errors = emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Take(10).ToList();
        Assert.True(emitted.Success, "The client generated from /openapi/v1.json, with the walk-through, does not compile:\n" + string.Join("\n", errors));
        image.Position = 0;
        return new AssemblyLoadContext("generated-client", isCollectible: true).LoadFromStream(image);
    }
}
