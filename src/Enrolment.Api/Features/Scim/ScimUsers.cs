using System.Text.Json.Nodes;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using Marten;
using NodaTime;
using static Enrolment.Api.Features.Scim.ScimWire;

namespace Enrolment.Api.Features.Scim;

/// <summary>What the use cases of Users share: reading a resource into a <see cref="ScimUser"/>, answering it, finding users.</summary>
public static class ScimUsers
{
    public const string Resource = "Users";

    /// <summary>The attributes to keep from a request body: everything but what the service owns or never keeps.</summary>
    public static JsonObject Writable(JsonObject body)
    {
        var kept = (JsonObject)body.DeepClone();
        foreach (var name in UserPatch.ReadOnly) Remove(kept, name);
        return kept;
    }

    /// <summary>userName, externalId and active read from the attributes, or the refusal (RFC 7643 §4.1: userName is required).</summary>
    public static ScimRefusal? Read(JsonObject attributes, out string userName, out string? externalId, out bool active)
    {
        userName = String(Get(attributes, "userName"))?.Trim() ?? "";
        externalId = Get(attributes, "externalId") is { } e ? String(e) : null;
        active = true;
        if (userName.Length is 0 or > 256) return ScimRefusal.BadValue("userName is required: a string of 1 to 256 characters.");
        if (Get(attributes, "externalId") is { } ext && ext.GetValueKind() != System.Text.Json.JsonValueKind.Null && externalId is null) return ScimRefusal.BadValue("externalId must be a string.");
        if (externalId is { Length: > 256 }) return ScimRefusal.BadValue("externalId is at most 256 characters.");
        if (Get(attributes, "active") is { } a && a.GetValueKind() != System.Text.Json.JsonValueKind.Null)
        {
            if (Boolean(a) is not { } b) return ScimRefusal.BadValue("active must be true or false.");
            active = b;
        }
        // Kept as a boolean whatever form it came in.
        Remove(attributes, "active");
        attributes["active"] = active;
        return null;
    }

    /// <summary>
    /// The id a new user gets, which never changes: its externalId when that is a valid user id of the service, else
    /// its userName when valid, else a generated one (PRODUCT.md).
    /// </summary>
    public static string ChooseId(string userName, string? externalId) =>
        externalId is not null && Ids.IsValidExternalId(externalId) ? externalId
        : Ids.IsValidExternalId(userName) ? userName
        : Guid.CreateVersion7().ToString();

    public static JsonObject Render(HttpRequest request, ScimUser user)
    {
        var attributes = JsonNode.Parse(user.Attributes) as JsonObject ?? new JsonObject();
        var schemas = new JsonArray(UserSchema);
        foreach (var key in attributes.Select(p => p.Key).Where(k => k.StartsWith("urn:", StringComparison.OrdinalIgnoreCase))) schemas.Add(key);
        var resource = new JsonObject { ["schemas"] = schemas, ["id"] = user.Id };
        if (user.ExternalId is not null) resource["externalId"] = user.ExternalId;
        resource["userName"] = user.UserName;
        resource["active"] = user.Active;
        foreach (var (name, value) in attributes.ToList())
        {
            if (name.Equals("userName", StringComparison.OrdinalIgnoreCase) || name.Equals("externalId", StringComparison.OrdinalIgnoreCase) || name.Equals("active", StringComparison.OrdinalIgnoreCase)) continue;
            attributes.Remove(name);
            resource[name] = value;
        }
        resource["meta"] = Meta(request, "User", Resource, user.Id, user.Created, user.LastModified);
        return resource;
    }

    /// <summary>Locks the user before it is read (lock order: the user, then a userName, then audiences).</summary>
    public static async Task Lock(IDocumentSession session, string userId, CancellationToken ct) =>
        await WriteLockRows.Lock(session, WriteLockRows.ScimUser, [userId], shared: false, ct);

    /// <summary>Takes the userName's lock, then answers whether another user of the tenant holds it.</summary>
    public static async Task<bool> NameTaken(IDocumentSession session, string userName, string exceptId, CancellationToken ct)
    {
        var key = userName.ToLowerInvariant();
        await WriteLockRows.Lock(session, WriteLockRows.ScimUserName, [key], shared: false, ct);
        return await session.Query<ScimUser>().AnyAsync(u => u.UserNameKey == key && u.Id != exceptId, ct);
    }

    public static void Store(IDocumentSession session, ScimUser user, JsonObject attributes, string userName, string? externalId, bool active, Instant now)
    {
        user.UserName = userName;
        user.UserNameKey = userName.ToLowerInvariant();
        user.ExternalId = externalId;
        user.Active = active;
        user.Attributes = attributes.ToJsonString();
        user.LastModified = now;
        session.Store(user);
    }
}
