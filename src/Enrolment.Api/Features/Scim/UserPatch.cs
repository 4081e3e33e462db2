using System.Text.Json.Nodes;
using static Enrolment.Api.Features.Scim.ScimWire;

namespace Enrolment.Api.Features.Scim;

/// <summary>A refusal in SCIM's terms: the status, the scimType and a sentence.</summary>
public sealed record ScimRefusal(int Status, string? ScimType, string Detail)
{
    public static ScimRefusal BadValue(string detail) => new(400, "invalidValue", detail);
    public static ScimRefusal BadSyntax(string detail) => new(400, "invalidSyntax", detail);
    public static ScimRefusal BadPath(string detail) => new(400, "invalidPath", detail);
}

/// <summary>
/// PATCH of a user (RFC 7644 §3.5.2) over its attributes as JSON: add, replace and remove, op names in any case, with a
/// path (<c>active</c>, <c>name.familyName</c>, <c>emails[type eq "work"].value</c>, an extension's
/// <c>urn:…:enterprise:2.0:User:department</c>) or without one (a value object of attributes, as Okta deactivates).
/// </summary>
public static class UserPatch
{
    /// <summary>Attributes a client cannot write: they are the service's (id, meta) or never kept (password, groups).</summary>
    public static readonly string[] ReadOnly = ["id", "meta", "schemas", "password", "groups"];

    public static ScimRefusal? Apply(JsonObject resource, JsonObject request)
    {
        if (Get(request, "Operations") is not JsonArray operations || operations.Count == 0)
            return ScimRefusal.BadSyntax("A PATCH body needs \"Operations\": a non-empty array of { op, path?, value? }.");
        foreach (var node in operations)
        {
            if (node is not JsonObject operation) return ScimRefusal.BadSyntax("Each operation must be an object.");
            var op = String(Get(operation, "op"))?.ToLowerInvariant();
            if (op is not ("add" or "replace" or "remove")) return ScimRefusal.BadSyntax("Each operation's \"op\" must be add, replace or remove.");
            var path = String(Get(operation, "path"));
            var value = Get(operation, "value")?.DeepClone();
            if (string.IsNullOrWhiteSpace(path))
            {
                if (op == "remove") return new ScimRefusal(400, "noTarget", "A remove operation needs a path.");
                if (value is not JsonObject attributes) return ScimRefusal.BadValue("An operation without a path needs a value object of attributes.");
                foreach (var (name, attribute) in attributes.ToList())
                    if (Set(resource, name, op, attribute?.DeepClone()) is { } refusal) return refusal;
                continue;
            }
            if (op != "remove" && value is null) return ScimRefusal.BadValue($"The {op} of {path} needs a value.");
            if (Set(resource, path, op, value) is { } refused) return refused;
        }
        return null;
    }

    /// <summary>Applies one operation at one path.</summary>
    public static ScimRefusal? Set(JsonObject resource, string path, string op, JsonNode? value)
    {
        var (container, attributePath) = Container(resource, path, create: op != "remove");
        if (container is null) return op == "remove" ? null : ScimRefusal.BadPath($"The path '{path}' does not name an attribute.");

        // name[filter].sub, name[filter], name.sub, name
        var bracket = attributePath.IndexOf('[');
        string name, sub = "";
        List<ScimCondition>? filter = null;
        if (bracket >= 0)
        {
            var close = attributePath.IndexOf(']', bracket);
            if (close < 0) return ScimRefusal.BadPath($"The path '{path}' has an unclosed '['.");
            name = attributePath[..bracket];
            if (!ScimFilter.TryParse(attributePath[(bracket + 1)..close], out var conditions, out var error)) return new ScimRefusal(400, "invalidFilter", error!);
            filter = conditions;
            var rest = attributePath[(close + 1)..];
            if (rest.Length > 0 && !rest.StartsWith('.')) return ScimRefusal.BadPath($"The path '{path}' is not understood after ']'.");
            sub = rest.TrimStart('.');
        }
        else
        {
            var dot = attributePath.IndexOf('.');
            name = dot < 0 ? attributePath : attributePath[..dot];
            sub = dot < 0 ? "" : attributePath[(dot + 1)..];
        }
        if (name.Length == 0) return ScimRefusal.BadPath($"The path '{path}' does not name an attribute.");
        if (ReadOnly.Contains(name, StringComparer.OrdinalIgnoreCase) && container == resource) return null; // ignored, as RFC 7644 §3.5.2 allows for read-only attributes

        var key = KeyOf(container, name);
        var existing = container[key];

        if (filter is not null)
        {
            if (existing is not JsonArray array)
            {
                if (op == "remove") return null;
                array = [];
                container[key] = array;
            }
            var matches = array.OfType<JsonObject>().Where(e => Matches(e, filter)).ToList();
            if (op == "remove")
            {
                foreach (var m in matches)
                    if (sub.Length == 0) array.Remove(m); else Remove(m, sub);
                return null;
            }
            if (matches.Count == 0)
            {
                // Replacing emails[type eq "work"].value where there is no work email adds one (as Entra ID expects).
                var added = new JsonObject();
                foreach (var c in filter.Where(c => !c.Attribute.Contains('.'))) added[c.Attribute] = c.Value;
                if (sub.Length > 0) added[sub] = value; else if (value is JsonObject o) Merge(added, o); else return ScimRefusal.BadValue($"The value of {path} must be an object.");
                array.Add(added);
                return null;
            }
            foreach (var m in matches)
            {
                if (sub.Length > 0) m[KeyOf(m, sub)] = value?.DeepClone();
                else if (value is JsonObject o) Merge(m, o);
                else return ScimRefusal.BadValue($"The value of {path} must be an object.");
            }
            return null;
        }

        if (sub.Length > 0)
        {
            if (existing is not JsonObject complex)
            {
                if (op == "remove") return null;
                complex = new JsonObject();
                container[key] = complex;
            }
            if (op == "remove") Remove(complex, sub); else complex[KeyOf(complex, sub)] = value;
            return null;
        }

        switch (op)
        {
            case "remove":
                container.Remove(key);
                break;
            case "add" when existing is JsonArray array:
                foreach (var item in value is JsonArray values ? values.Select(v => v?.DeepClone()).ToList() : [value])
                    if (!array.Any(e => JsonNode.DeepEquals(e, item))) array.Add(item);
                break;
            case "add" or "replace" when existing is JsonObject complex && value is JsonObject update:
                // A complex attribute: the sub-attributes given replace theirs, the others stay (RFC 7644 §3.5.2.3).
                Merge(complex, update);
                break;
            default:
                container[key] = value;
                break;
        }
        return null;
    }

    /// <summary>The object that holds the attribute a path names: the resource, or an extension schema's object (urn:…:User:attr).</summary>
    private static (JsonObject? Container, string Path) Container(JsonObject resource, string path, bool create)
    {
        if (!path.StartsWith("urn:", StringComparison.OrdinalIgnoreCase)) return (resource, path);
        var end = path.IndexOf('[') is var b and >= 0 ? b : path.Length;
        var colon = path.LastIndexOf(':', end - 1);
        if (colon <= 0) return (null, path);
        var schema = path[..colon];
        var attribute = path[(colon + 1)..];
        if (schema.Equals(UserSchema, StringComparison.OrdinalIgnoreCase)) return (resource, attribute);
        var key = KeyOf(resource, schema);
        if (resource[key] is JsonObject extension) return (extension, attribute);
        if (!create) return (null, attribute);
        extension = new JsonObject();
        resource[key] = extension;
        return (extension, attribute);
    }

    private static bool Matches(JsonObject element, List<ScimCondition> filter) =>
        filter.All(c => String(Get(element, c.Attribute)) is { } s ? string.Equals(s, c.Value, StringComparison.OrdinalIgnoreCase)
            : Get(element, c.Attribute) is JsonValue v ? string.Equals(v.ToJsonString(), c.Value, StringComparison.OrdinalIgnoreCase) : c.Value is null);

    private static void Merge(JsonObject target, JsonObject update)
    {
        foreach (var (name, value) in update.ToList()) target[KeyOf(target, name)] = value?.DeepClone();
    }
}
