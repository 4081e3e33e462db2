extern alias jsoneverything;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Alba;
using jsoneverything::Json.Schema;
using Microsoft.AspNetCore.Http;

namespace Enrolment.Api.Tests.OpenApi;

/// <summary>
/// The served OpenAPI document as a contract: every answer the API test suite receives through Alba is checked against
/// it (<see cref="AppFixture.StartHost"/> hooks this in). An answer fails its test when the document does not list its
/// status for that operation, does not list its media type, or its body does not match the schema, which here also
/// refuses any property the schema does not name. Paths the document does not describe (health, metrics, the docs
/// themselves, unknown routes) are not checked.
/// </summary>
public sealed class OpenApiContract
{
    private static readonly ConditionalWeakTable<IAlbaHost, OpenApiContract> Contracts = new();

    private readonly JsonObject document;
    private readonly JsonObject defs;
    private readonly List<(string Template, Regex Pattern, JsonObject PathItem)> paths;
    private readonly Dictionary<string, JsonSchema> schemas = new();
    private readonly Lock gate = new();

    private static readonly EvaluationOptions Evaluation = new() { OutputFormat = OutputFormat.List, RequireFormatValidation = true };

    private OpenApiContract(JsonObject document)
    {
        this.document = document;
        var components = document["components"]?["schemas"]?.DeepClone().AsObject() ?? new JsonObject();
        defs = (JsonObject)Strict(RewriteRefs(components));
        paths = document["paths"]!.AsObject()
            .Select(p => (p.Key, new Regex("^" + Regex.Replace(Regex.Escape(p.Key), @"\\\{[^/]+?\}", "[^/]+") + "$"), p.Value!.AsObject()))
            // Literal segments win over parameters, as in ASP.NET routing.
            .OrderBy(p => p.Key.Count(c => c == '{'))
            .ToList();
    }

    public static JsonObject Document(IAlbaHost host) => For(host).document;

    public static OpenApiContract For(IAlbaHost host)
    {
        lock (Contracts)
        {
            if (Contracts.TryGetValue(host, out var contract)) return contract;
            // Straight from the test server: not through Alba, so fetching the document is not itself checked.
            using var client = host.Server.CreateClient();
            var text = client.GetStringAsync("/openapi/v1.json").GetAwaiter().GetResult();
            contract = new OpenApiContract(JsonNode.Parse(text)!.AsObject());
            Contracts.Add(host, contract);
            return contract;
        }
    }

    /// <summary>Routes that are not part of the API: the pages, the API page and documents, metrics.</summary>
    private static readonly string[] UndocumentedOnPurpose = ["/app", "/docs", "/openapi/", "/asyncapi/", "/metrics", "/scalar", "/health/"];

    /// <summary>Registers the check on every scenario the host runs.</summary>
    public static void Enforce(IAlbaHost host) => host.AfterEachAsync(context => For(host).Check(context!));

    public async Task Check(HttpContext context)
    {
        var method = context.Request.Method.ToLowerInvariant();
        var path = context.Request.Path.Value ?? "/";
        var status = context.Response.StatusCode;
        // 499: the client went away before the answer; nobody receives it.
        if (status == 499) return;
        var match = paths.FirstOrDefault(p => p.Pattern.IsMatch(path));
        if (match.PathItem is null || match.PathItem[method] is not JsonObject operation)
        {
            // An answer of a route the document does not describe: only the pages, the documents themselves and the
            // operators' endpoints may be missing from it. A path no endpoint matched (404) or a method a route does not
            // take (405) is not a route.
            var routed = context.GetEndpoint() is Microsoft.AspNetCore.Routing.RouteEndpoint;
            if (routed && status is not (404 or 405) && !UndocumentedOnPurpose.Any(prefix => path.StartsWith(prefix, StringComparison.Ordinal)))
                throw new Xunit.Sdk.XunitException($"Contract: {method.ToUpperInvariant()} {path} answered {status}, but /openapi/v1.json does not describe that route.");
            return;
        }

        var body = await ReadBody(context.Response);
        var contentType = context.Response.ContentType?.Split(';')[0].Trim();
        var where = $"{method.ToUpperInvariant()} {path} (operation {operation["operationId"]}, {match.Template})";
        var answer = $"{status} {contentType ?? "(no content type)"}: {Shorten(body)}";

        var responses = operation["responses"]!.AsObject();
        if (Resolve(responses[status.ToString(System.Globalization.CultureInfo.InvariantCulture)]) is not JsonObject response)
            throw new Xunit.Sdk.XunitException($"Contract: {where} answered {answer}, but /openapi/v1.json documents only {string.Join(", ", responses.Select(r => r.Key))}.");

        var content = response["content"] as JsonObject;
        if (content is null || content.Count == 0)
        {
            if (body.Length > 0)
                throw new Xunit.Sdk.XunitException($"Contract: {where} answered {answer}, but the document says {status} has no body.");
            return;
        }
        if (contentType is null || content[contentType] is not JsonObject media)
            throw new Xunit.Sdk.XunitException($"Contract: {where} answered {answer}, but the document gives {status} only as {string.Join(", ", content.Select(c => c.Key))}.");
        if (media["schema"] is not JsonObject schema) return;
        if (contentType == "text/csv")
        {
            // The documented header row (the media type's description ends with it) must be the answer's first line.
            var documented = schema["description"]?.GetValue<string>() is { } d && d.IndexOf("Header row: ", StringComparison.Ordinal) is var at and >= 0 ? d[(at + 12)..] : null;
            var header = body.Split("\r\n")[0];
            if (documented is null || header != documented)
                throw new Xunit.Sdk.XunitException($"Contract: {where} answered CSV with the header row '{Shorten(header)}', but the document gives '{documented}'.");
            return;
        }

        var validator = SchemaFor($"{match.Template} {method} {status} {contentType}", schema);
        // NDJSON: the documented schema is each line's (OpenAPI 3.1 cannot say "each line").
        var values = contentType.EndsWith("ndjson", StringComparison.Ordinal)
            ? body.Split('\n').Where(l => l.Trim().Length > 0).ToArray()
            : [body];
        foreach (var value in values)
        {
            JsonElement instance;
            try { instance = JsonDocument.Parse(value).RootElement; }
            catch (JsonException) { throw new Xunit.Sdk.XunitException($"Contract: {where} answered {answer}, which is not JSON{(values.Length > 1 ? $" line by line ({Shorten(value)})" : "")}."); }
            var result = validator.Evaluate(instance, Evaluation);
            if (!result.IsValid)
            {
                var errors = new[] { result }.Concat(result.Details ?? []).Where(d => d.Errors is { Count: > 0 })
                    .SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value} (schema {d.EvaluationPath})")).Distinct().Take(8);
                var which = values.Length > 1 ? $" (line {Shorten(value)})" : "";
                throw new Xunit.Sdk.XunitException($"Contract: {where} answered {answer}, which does not match the documented schema{which}:\n  {string.Join("\n  ", errors)}");
            }
        }
    }

    private JsonSchema SchemaFor(string key, JsonObject schema)
    {
        lock (gate)
        {
            if (schemas.TryGetValue(key, out var built)) return built;
            var root = (JsonObject)Strict(RewriteRefs(schema.DeepClone()));
            root["$schema"] = "https://json-schema.org/draft/2020-12/schema";
            root["$defs"] = defs.DeepClone();
            built = JsonSchema.FromText(root.ToJsonString());
            schemas[key] = built;
            return built;
        }
    }

    private JsonNode? Resolve(JsonNode? node)
    {
        if (node is JsonObject o && o["$ref"]?.GetValue<string>() is { } reference && reference.StartsWith("#/", StringComparison.Ordinal))
        {
            JsonNode? target = document;
            foreach (var segment in reference[2..].Split('/')) target = target?[segment.Replace("~1", "/").Replace("~0", "~")];
            return Resolve(target);
        }
        return node;
    }

    private static JsonNode RewriteRefs(JsonNode node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (key, value) in o.ToList())
                {
                    // A property named "$ref" (SCIM's member reference) is an object here, not a reference.
                    if (key == "$ref" && value is JsonValue && value.GetValue<string>() is { } r && r.StartsWith("#/components/schemas/", StringComparison.Ordinal))
                        o[key] = "#/$defs/" + r["#/components/schemas/".Length..];
                    else if (value is not null) RewriteRefs(value);
                }
                break;
            case JsonArray a:
                foreach (var item in a) if (item is not null) RewriteRefs(item);
                break;
        }
        return node;
    }

    /// <summary>An object schema that names its properties allows no others: an undocumented field is a violation.</summary>
    private static JsonNode Strict(JsonNode node)
    {
        switch (node)
        {
            case JsonObject o:
                if (o["properties"] is JsonObject && !o.ContainsKey("additionalProperties") && !o.ContainsKey("unevaluatedProperties"))
                    o["additionalProperties"] = false;
                foreach (var (key, value) in o.ToList())
                    // Under "properties" the keys are property names, whose values are schemas.
                    if (value is not null) Strict(value);
                break;
            case JsonArray a:
                foreach (var item in a) if (item is not null) Strict(item);
                break;
        }
        return node;
    }

    /// <summary>
    /// TestServer's response body can be read once, forwards only: read it, then put a copy back where Alba (and so the
    /// test) reads it afterwards.
    /// </summary>
    private static async Task<string> ReadBody(HttpResponse response)
    {
        using var copy = new MemoryStream();
        if (response.Body.CanSeek) response.Body.Position = 0;
        if (response.Body.CanRead) await response.Body.CopyToAsync(copy);
        var bytes = copy.ToArray();
        response.Body = new MemoryStream(bytes, writable: false);
        return Encoding.UTF8.GetString(bytes);
    }

    private static string Shorten(string body) => body.Length > 600 ? body[..600] + "…" : body;
}
