using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using NodaTime;

namespace Enrolment.Api.Features.Scim;

/// <summary>
/// SCIM's wire format (RFC 7644 §3.1, §3.12): <c>application/scim+json</c> or <c>application/json</c> both ways, attribute
/// names case-insensitive, errors as SCIM error documents. Bodies are read as JSON nodes, not bound to types, because
/// providers send any casing ("Operations", "op": "Replace") and extension attributes the service stores as sent.
/// </summary>
public static class ScimWire
{
    public const string MediaType = "application/scim+json";
    public const string BasePath = "/scim/v2";
    public const string UserSchema = "urn:ietf:params:scim:schemas:core:2.0:User";
    public const string GroupSchema = "urn:ietf:params:scim:schemas:core:2.0:Group";
    public const string ListSchema = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
    public const string PatchSchema = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
    public const string ErrorSchema = "urn:ietf:params:scim:api:messages:2.0:Error";

    private static readonly JsonSerializerOptions Output = new() { WriteIndented = false };

    /// <summary>The media type to answer in: application/json when that is all the client accepts, else application/scim+json.</summary>
    public static string Negotiate(HttpRequest request)
    {
        var accept = request.Headers.Accept.ToString();
        return accept.Contains("application/json", StringComparison.OrdinalIgnoreCase) && !accept.Contains(MediaType, StringComparison.OrdinalIgnoreCase)
            ? "application/json" : MediaType;
    }

    public static IResult Answer(HttpContext context, JsonNode body, int status = StatusCodes.Status200OK) =>
        Results.Content(body.ToJsonString(Output), Negotiate(context.Request), Encoding.UTF8, status);

    public static IResult Error(HttpContext context, int status, string? scimType, string detail) =>
        Answer(context, ErrorDocument(status, scimType, detail), status);

    public static JsonObject ErrorDocument(int status, string? scimType, string detail)
    {
        var error = new JsonObject { ["schemas"] = new JsonArray(ErrorSchema), ["status"] = status.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        if (scimType is not null) error["scimType"] = scimType;
        error["detail"] = detail;
        return error;
    }

    /// <summary>The request's JSON object, or the SCIM error to answer (415 for another media type, 400 invalidSyntax for bad JSON).</summary>
    public static async Task<(JsonObject? Body, IResult? Error)> ReadObject(HttpContext context)
    {
        var contentType = context.Request.ContentType;
        if (!string.IsNullOrEmpty(contentType))
        {
            var media = MediaTypeHeaderValue.TryParse(contentType, out var parsed) ? parsed.MediaType : null;
            if (media is null || !(media.Equals(MediaType, StringComparison.OrdinalIgnoreCase) || media.Equals("application/json", StringComparison.OrdinalIgnoreCase)))
                return (null, Error(context, StatusCodes.Status415UnsupportedMediaType, null, $"Send the body as {MediaType} or application/json."));
        }
        try
        {
            var node = await JsonNode.ParseAsync(context.Request.Body, documentOptions: new JsonDocumentOptions { MaxDepth = 32 }, cancellationToken: context.RequestAborted);
            return node is JsonObject o ? (o, null) : (null, Error(context, 400, "invalidSyntax", "The body must be a JSON object."));
        }
        catch (JsonException)
        {
            return (null, Error(context, 400, "invalidSyntax", "The body is not valid JSON."));
        }
    }

    /// <summary>An attribute of an object, its name compared case-insensitively (RFC 7643 §2.1).</summary>
    public static JsonNode? Get(JsonObject o, string name) => o.FirstOrDefault(p => p.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;

    /// <summary>The name under which <paramref name="name"/> is held, or <paramref name="name"/> itself when it is not.</summary>
    public static string KeyOf(JsonObject o, string name) => o.FirstOrDefault(p => p.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Key ?? name;

    public static void Remove(JsonObject o, string name)
    {
        foreach (var key in o.Where(p => p.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(p => p.Key).ToList()) o.Remove(key);
    }

    public static string? String(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    /// <summary>A boolean as SCIM clients send it: true/false, or "True"/"False" as Entra ID did before its 2020 fix.</summary>
    public static bool? Boolean(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        JsonValue v when v.TryGetValue<string>(out var s) && bool.TryParse(s, out var parsed) => parsed,
        _ => null,
    };

    public static string Location(HttpRequest request, string resource, string id) =>
        $"{request.Scheme}://{request.Host}{BasePath}/{resource}/{Uri.EscapeDataString(id)}";

    public static JsonObject Meta(HttpRequest request, string resourceType, string resource, string id, Instant created, Instant lastModified) => new()
    {
        ["resourceType"] = resourceType,
        ["created"] = Infrastructure.Json.Format(created),
        ["lastModified"] = Infrastructure.Json.Format(lastModified),
        ["location"] = Location(request, resource, id),
    };

    /// <summary>attributes / excludedAttributes (RFC 7644 §3.9) on the top level; id and schemas are always returned.</summary>
    public static JsonObject Project(JsonObject resource, string? attributes, string? excluded)
    {
        static string[] Names(string? list) => (list ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(n => n.Contains(':') && n.StartsWith("urn:", StringComparison.OrdinalIgnoreCase) ? n[(n.LastIndexOf(':') + 1)..] : n)
            .Select(n => n.Split('.')[0]).ToArray();
        var keep = Names(attributes);
        var drop = Names(excluded);
        foreach (var key in resource.Select(p => p.Key).ToList())
        {
            if (key is "id" or "schemas") continue;
            if (keep.Length > 0 && key != "meta" && !keep.Contains(key, StringComparer.OrdinalIgnoreCase)) resource.Remove(key);
            else if (drop.Contains(key, StringComparer.OrdinalIgnoreCase)) resource.Remove(key);
        }
        return resource;
    }

    public static JsonObject List(IEnumerable<JsonObject> resources, int total, int startIndex)
    {
        var array = new JsonArray(resources.Cast<JsonNode>().ToArray());
        return new JsonObject
        {
            ["schemas"] = new JsonArray(ListSchema),
            ["totalResults"] = total,
            ["startIndex"] = startIndex,
            ["itemsPerPage"] = array.Count,
            ["Resources"] = array,
        };
    }

    /// <summary>Paging (RFC 7644 §3.4.2.4): startIndex from 1 (less is 1), count from 0 (negative is 0), at most <see cref="MaxCount"/>.</summary>
    public static (int StartIndex, int Count) Page(int? startIndex, int? count) =>
        (Math.Max(1, startIndex ?? 1), Math.Clamp(count ?? DefaultCount, 0, MaxCount));

    public const int DefaultCount = 100, MaxCount = 1000;
}
