using System.Text.Json.Nodes;
using Enrolment.Api.Features.Audiences;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using Marten;
using NodaTime;
using Wolverine;
using static Enrolment.Api.Features.Scim.ScimWire;

namespace Enrolment.Api.Features.Scim;

/// <summary>
/// A group's members as SCIM sees them, read under the locks a change needs: the audience's members, and the group's
/// deactivated users, who are members for SCIM but not for the audience (<see cref="SuspendedMembership"/>).
/// </summary>
public sealed record GroupMembers(Enrolments.AudienceLock Held, HashSet<string> Members, HashSet<string> Suspended)
{
    public HashSet<string> All => Members.Concat(Suspended).ToHashSet(StringComparer.Ordinal);
}

/// <summary>What the use cases of Groups share: the membership change, reading and answering a group.</summary>
public static class ScimGroups
{
    public const string Resource = "Groups";

    /// <summary>
    /// Locks for a change of the group's members, in the one writer's order: first the SCIM users that may join (so a
    /// deactivation of one of them cannot interleave: it holds that lock too), then the audience (Membership.LockAndRead,
    /// rule 4), and reads the members after both.
    /// </summary>
    public static async Task<GroupMembers> Lock(IDocumentSession session, string groupId, IReadOnlyCollection<string> mayJoin, CancellationToken ct)
    {
        await WriteLockRows.Lock(session, WriteLockRows.ScimUser, mayJoin, shared: false, ct);
        var (held, members) = await Membership.LockAndRead(session, groupId, ct);
        var suspended = (await session.Query<SuspendedMembership>().Where(m => m.AudienceId == groupId).Select(m => m.UserId).ToListAsync(ct)).ToHashSet(StringComparer.Ordinal);
        return new GroupMembers(held, members, suspended);
    }

    /// <summary>
    /// Makes <paramref name="wanted"/> the group's members: the same membership change as PUT /audiences/{id}/members
    /// (Membership.Change: the member rows, the fan-out operation and its batches, the actor), except that a deactivated
    /// user who joins is remembered as suspended instead of joining the audience.
    /// </summary>
    public static async Task Set(IDocumentSession session, IMessageBus bus, Instant now, GroupMembers current, IReadOnlySet<string> wanted, CancellationToken ct)
    {
        var arriving = wanted.Where(u => !current.Members.Contains(u) && !current.Suspended.Contains(u)).ToArray();
        var inactive = arriving.Length == 0 ? new HashSet<string>()
            : (await session.Query<ScimUser>().Where(u => !u.Active && u.Id.IsOneOf(arriving)).Select(u => u.Id).ToListAsync(ct)).ToHashSet(StringComparer.Ordinal);
        var joins = arriving.Where(u => !inactive.Contains(u)).ToArray();
        var leaves = current.Members.Where(u => !wanted.Contains(u)).ToArray();
        if (joins.Length + leaves.Length > 0)
            await Membership.Change(session, bus, now, current.Held, joins, leaves, ct);
        var groupId = current.Held.AudienceId;
        foreach (var u in arriving.Where(inactive.Contains))
            session.Store(new SuspendedMembership { Id = SuspendedMembership.Key(groupId, u), AudienceId = groupId, UserId = u, SuspendedAt = now });
        foreach (var u in current.Suspended.Where(u => !wanted.Contains(u)))
            session.Delete<SuspendedMembership>(SuspendedMembership.Key(groupId, u));
    }

    /// <summary>The member ids of a members value: [{ "value": "…" }, …], each a valid user id; or the refusal.</summary>
    public static ScimRefusal? MemberIds(JsonNode? value, List<string> into)
    {
        if (value is null) return null;
        var items = value is JsonArray array ? array.ToList() : [value];
        foreach (var item in items)
        {
            var id = item is JsonObject o ? String(Get(o, "value")) : String(item);
            if (id is null || !Ids.IsValidExternalId(id))
                return ScimRefusal.BadValue("Each member needs a value: a user id of 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -.");
            into.Add(id);
        }
        return null;
    }

    public static ScimRefusal? DisplayName(JsonNode? node, out string displayName)
    {
        displayName = String(node)?.Trim() ?? "";
        return displayName.Length is 0 or > 256 ? ScimRefusal.BadValue("displayName is required: a string of 1 to 256 characters.") : null;
    }

    /// <summary>Takes the displayName's lock, then answers whether another group of the tenant holds it.</summary>
    public static async Task<bool> NameTaken(IDocumentSession session, string displayName, string exceptId, CancellationToken ct)
    {
        var key = displayName.ToLowerInvariant();
        await WriteLockRows.Lock(session, WriteLockRows.ScimGroupName, [key], shared: false, ct);
        return await session.Query<ScimGroup>().AnyAsync(g => g.DisplayNameKey == key && g.Id != exceptId, ct);
    }

    public static async Task<JsonObject> Render(HttpRequest request, IQuerySession session, ScimGroup group, IReadOnlyCollection<string>? members, CancellationToken ct)
    {
        var resource = new JsonObject { ["schemas"] = new JsonArray(GroupSchema), ["id"] = group.Id };
        if (group.ExternalId is not null) resource["externalId"] = group.ExternalId;
        resource["displayName"] = group.DisplayName;
        if (members is not null)
        {
            var ordered = members.Order(StringComparer.Ordinal).ToArray();
            var users = (await session.LoadManyAsync<ScimUser>(ct, ordered)).ToDictionary(u => u.Id, StringComparer.Ordinal);
            resource["members"] = new JsonArray(ordered.Select(id =>
            {
                var member = new JsonObject { ["value"] = id };
                if (users.TryGetValue(id, out var user))
                {
                    member["display"] = user.UserName;
                    member["$ref"] = Location(request, ScimUsers.Resource, id);
                    member["type"] = "User";
                }
                return (JsonNode)member;
            }).ToArray());
        }
        resource["meta"] = Meta(request, "Group", Resource, group.Id, group.Created, group.LastModified);
        return resource;
    }

    /// <summary>The SCIM members of a group outside a change (no locks): for answers.</summary>
    public static async Task<HashSet<string>> Members(IQuerySession session, string groupId, CancellationToken ct)
    {
        var members = await Membership.Current(session, groupId, ct);
        members.UnionWith(await session.Query<SuspendedMembership>().Where(m => m.AudienceId == groupId).Select(m => m.UserId).ToListAsync(ct));
        return members;
    }

    public static bool Excludes(string? attributes, string? excludedAttributes, string name) =>
        (excludedAttributes ?? "").Split(',', StringSplitOptions.TrimEntries).Any(a => a.Equals(name, StringComparison.OrdinalIgnoreCase) || a.EndsWith(":" + name, StringComparison.OrdinalIgnoreCase))
        || (!string.IsNullOrWhiteSpace(attributes) && !attributes.Split(',', StringSplitOptions.TrimEntries).Any(a => a.Equals(name, StringComparison.OrdinalIgnoreCase) || a.StartsWith(name + ".", StringComparison.OrdinalIgnoreCase)));
}

/// <summary>
/// The operations of a group PATCH, read before any lock so the users who may join are known: members added, removed
/// or replaced (Okta: path <c>members[value eq "…"]</c>; Entra ID: path <c>members</c> with a value list), displayName
/// and externalId replaced, with or without a path, op names in any case.
/// </summary>
public sealed class GroupPatch
{
    private readonly List<Func<HashSet<string>, HashSet<string>>> memberSteps = [];
    public List<string> MayJoin { get; } = [];
    public string? DisplayName { get; private set; }
    public bool ExternalIdChanged { get; private set; }
    public string? ExternalId { get; private set; }
    public bool ChangesMembers => memberSteps.Count > 0;

    public HashSet<string> Apply(HashSet<string> members)
    {
        foreach (var step in memberSteps) members = step(members);
        return members;
    }

    public static (GroupPatch? Patch, ScimRefusal? Refusal) Read(JsonObject body)
    {
        if (Get(body, "Operations") is not JsonArray operations || operations.Count == 0)
            return (null, ScimRefusal.BadSyntax("A PATCH body needs \"Operations\": a non-empty array of { op, path?, value? }."));
        var patch = new GroupPatch();
        foreach (var node in operations)
        {
            if (node is not JsonObject operation) return (null, ScimRefusal.BadSyntax("Each operation must be an object."));
            var op = String(Get(operation, "op"))?.ToLowerInvariant();
            if (op is not ("add" or "replace" or "remove")) return (null, ScimRefusal.BadSyntax("Each operation's \"op\" must be add, replace or remove."));
            var path = String(Get(operation, "path"))?.Trim();
            var value = Get(operation, "value");
            ScimRefusal? refusal;
            if (string.IsNullOrEmpty(path))
            {
                if (op == "remove") return (null, new ScimRefusal(400, "noTarget", "A remove operation needs a path."));
                if (value is not JsonObject attributes) return (null, ScimRefusal.BadValue("An operation without a path needs a value object of attributes."));
                foreach (var (name, attribute) in attributes)
                    if ((refusal = patch.Attribute(op, name, attribute)) is not null) return (null, refusal);
                continue;
            }
            if ((refusal = patch.Attribute(op, path, value)) is not null) return (null, refusal);
        }
        return (patch, null);
    }

    private ScimRefusal? Attribute(string op, string path, JsonNode? value)
    {
        var name = ScimFilter.Normalize(path);
        if (name.StartsWith("members[", StringComparison.Ordinal))
        {
            // members[value eq "x"]: Okta's removal of one member.
            if (!ScimFilter.TryParse(path, out var conditions, out var error)) return new ScimRefusal(400, "invalidFilter", error!);
            if (conditions is not [{ Attribute: "members.value", Value: { } one }]) return ScimRefusal.BadPath("Only members[value eq \"<user id>\"] selects members.");
            if (op != "remove") return ScimRefusal.BadPath("A filtered members path can only be removed; add members with path members and a value list.");
            memberSteps.Add(m => { m.Remove(one); return m; });
            return null;
        }
        switch (name)
        {
            case "members":
            {
                var ids = new List<string>();
                if (ScimGroups.MemberIds(value, ids) is { } refusal) return refusal;
                var set = ids.ToHashSet(StringComparer.Ordinal);
                switch (op)
                {
                    case "add":
                        MayJoin.AddRange(ids);
                        memberSteps.Add(m => { m.UnionWith(set); return m; });
                        break;
                    case "replace":
                        MayJoin.AddRange(ids);
                        memberSteps.Add(_ => new HashSet<string>(set, StringComparer.Ordinal));
                        break;
                    default:
                        // Entra ID: path members with the members to remove as the value; no value removes every member.
                        memberSteps.Add(m => { if (value is null) m.Clear(); else m.ExceptWith(set); return m; });
                        break;
                }
                return null;
            }
            case "displayname":
            {
                if (op == "remove") return ScimRefusal.BadValue("displayName is required; it cannot be removed.");
                if (ScimGroups.DisplayName(value, out var displayName) is { } refusal) return refusal;
                DisplayName = displayName;
                return null;
            }
            case "externalid":
                ExternalIdChanged = true;
                ExternalId = op == "remove" ? null : String(value);
                return null;
            case "id" or "schemas" or "meta":
                return null; // the service's; Okta sends id back in a rename
            default:
                return ScimRefusal.BadPath($"A group has displayName, externalId and members; '{path}' is not one of them.");
        }
    }
}
