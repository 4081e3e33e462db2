using System.Text.Json.Nodes;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine;
using Wolverine.Http;
using static Enrolment.Api.Features.Scim.ScimWire;

namespace Enrolment.Api.Features.Scim;

public static class CreateScimGroupEndpoint
{
    [WolverinePost("/scim/v2/Groups", OperationId = "scimCreateGroup"), Authorize(Policy = AuthPolicies.Scim)]
    [Tags("SCIM")]
    [EndpointSummary("Provision a group: an audience whose id is the group's externalId when that is a valid audience id, else a generated one. Its members join the audience as through PUT /audiences/{id}/members.")]
    [ScimBody(typeof(ScimGroupResource)), ScimAnswer(typeof(ScimGroupResource), StatusCodes.Status201Created, 400, 409)]
    public static async Task<IResult> Post(HttpContext context, IDocumentSession session, IMessageBus bus, IClock clock)
    {
        var ct = context.RequestAborted;
        var (body, error) = await ReadObject(context);
        if (body is null) return error!;
        if (ScimGroups.DisplayName(Get(body, "displayName"), out var displayName) is { } refusal) return Error(context, refusal.Status, refusal.ScimType, refusal.Detail);
        var externalId = String(Get(body, "externalId"));
        var members = new List<string>();
        if (ScimGroups.MemberIds(Get(body, "members"), members) is { } invalid) return Error(context, invalid.Status, invalid.ScimType, invalid.Detail);
        var id = externalId is not null && Ids.IsValidExternalId(externalId) ? externalId : Guid.CreateVersion7().ToString();

        // Lock order: the name, the users who may join, the audience (ScimGroups.Lock); every check before any write.
        if (await ScimGroups.NameTaken(session, displayName, id, ct))
            return Error(context, 409, "uniqueness", $"displayName {displayName} is taken by another group.");
        var current = await ScimGroups.Lock(session, id, members, ct);
        if (await session.LoadAsync<ScimGroup>(id, ct) is not null)
            return Error(context, 409, "uniqueness", $"A group with id {id} exists already (its externalId).");

        var now = clock.GetCurrentInstant();
        var wanted = members.ToHashSet(StringComparer.Ordinal);
        await ScimGroups.Set(session, bus, now, current, wanted, ct);
        var group = new ScimGroup { Id = id, DisplayName = displayName, DisplayNameKey = displayName.ToLowerInvariant(), ExternalId = externalId, Created = now, LastModified = now };
        session.Store(group);
        context.Response.Headers.Location = Location(context.Request, ScimGroups.Resource, id);
        return Answer(context, await ScimGroups.Render(context.Request, session, group, wanted, ct), StatusCodes.Status201Created);
    }
}

public static class GetScimGroupEndpoint
{
    [WolverineGet("/scim/v2/Groups/{id}", OperationId = "scimGetGroup"), Authorize(Policy = AuthPolicies.Scim)]
    [Tags("SCIM")]
    [EndpointSummary("A provisioned group with its members (excludedAttributes=members leaves them out).")]
    [ScimAnswer(typeof(ScimGroupResource), StatusCodes.Status200OK, 404)]
    public static async Task<IResult> Get(string id, string? attributes, string? excludedAttributes, HttpContext context, IQuerySession session)
    {
        var ct = context.RequestAborted;
        var group = await session.LoadAsync<ScimGroup>(id, ct);
        if (group is null) return Error(context, 404, null, $"No group {id}.");
        var members = ScimGroups.Excludes(attributes, excludedAttributes, "members") ? null : await ScimGroups.Members(session, id, ct);
        return Answer(context, Project(await ScimGroups.Render(context.Request, session, group, members, ct), attributes, excludedAttributes));
    }
}

public static class ListScimGroupsEndpoint
{
    [WolverineGet("/scim/v2/Groups", OperationId = "scimListGroups"), Authorize(Policy = AuthPolicies.Scim)]
    [Tags("SCIM")]
    [EndpointSummary("Groups, filtered with eq on displayName (case-insensitive), externalId, id or members[value eq …] (joined by and), paged with startIndex and count, in id order.")]
    [ScimAnswer(typeof(ScimGroupList), StatusCodes.Status200OK, 400)]
    public static async Task<IResult> Get(string? filter, int? startIndex, int? count, string? attributes, string? excludedAttributes, HttpContext context, IQuerySession session)
    {
        var ct = context.RequestAborted;
        if (!ScimFilter.TryParse(filter, out var conditions, out var error)) return Error(context, 400, "invalidFilter", error!);
        var unsupported = conditions.FirstOrDefault(c => c.Attribute is not ("displayname" or "externalid" or "id" or "members.value" or "members"));
        if (unsupported is not null) return Error(context, 400, "invalidFilter", $"Groups filter on displayName, externalId, id or members; not on {unsupported.Attribute}.");
        var (start, take) = Page(startIndex, count);
        if (conditions.Any(c => c.Value is null && c.Attribute != "externalid"))
            return Answer(context, List([], 0, start));

        IQueryable<ScimGroup> query = session.Query<ScimGroup>();
        foreach (var c in conditions)
        {
            var value = c.Value!;
            switch (c.Attribute)
            {
                case "displayname":
                    var key = value.ToLowerInvariant();
                    query = query.Where(g => g.DisplayNameKey == key);
                    break;
                case "externalid":
                    query = c.Value is null ? query.Where(g => g.ExternalId == null) : query.Where(g => g.ExternalId == value);
                    break;
                case "id":
                    query = query.Where(g => g.Id == value);
                    break;
            }
        }
        var groups = await query.OrderBy(g => g.Id).ToListAsync(ct);
        // members[value eq "u"]: the groups of which u is a SCIM member.
        foreach (var member in conditions.Where(c => c.Attribute is "members.value" or "members").Select(c => c.Value!))
        {
            var of = (await session.Query<Audiences.AudienceMember>().Where(m => m.UserId == member).Select(m => m.AudienceId).ToListAsync(ct))
                .Concat(await session.Query<SuspendedMembership>().Where(m => m.UserId == member).Select(m => m.AudienceId).ToListAsync(ct))
                .ToHashSet(StringComparer.Ordinal);
            groups = groups.Where(g => of.Contains(g.Id)).ToList();
        }
        var page = groups.Skip(start - 1).Take(take).ToList();
        var withMembers = !ScimGroups.Excludes(attributes, excludedAttributes, "members");
        var resources = new List<JsonObject>();
        foreach (var g in page)
            resources.Add(Project(await ScimGroups.Render(context.Request, session, g, withMembers ? await ScimGroups.Members(session, g.Id, ct) : null, ct), attributes, excludedAttributes));
        return Answer(context, List(resources, groups.Count, start));
    }
}

public static class ReplaceScimGroupEndpoint
{
    [WolverinePut("/scim/v2/Groups/{id}", OperationId = "scimReplaceGroup"), Authorize(Policy = AuthPolicies.Scim)]
    [Tags("SCIM")]
    [EndpointSummary("Replace a group's name and members (RFC 7644 §3.5.1): the same membership change as PUT /audiences/{id}/members.")]
    [ScimBody(typeof(ScimGroupResource)), ScimAnswer(typeof(ScimGroupResource), StatusCodes.Status200OK, 400, 404, 409)]
    public static async Task<IResult> Put(string id, HttpContext context, IDocumentSession session, IMessageBus bus, IClock clock)
    {
        var ct = context.RequestAborted;
        var (body, error) = await ReadObject(context);
        if (body is null) return error!;
        if (ScimGroups.DisplayName(Get(body, "displayName"), out var displayName) is { } refusal) return Error(context, refusal.Status, refusal.ScimType, refusal.Detail);
        var members = new List<string>();
        if (ScimGroups.MemberIds(Get(body, "members"), members) is { } invalid) return Error(context, invalid.Status, invalid.ScimType, invalid.Detail);

        if (await ScimGroups.NameTaken(session, displayName, id, ct))
            return Error(context, 409, "uniqueness", $"displayName {displayName} is taken by another group.");
        var current = await ScimGroups.Lock(session, id, members, ct);
        var group = await session.LoadAsync<ScimGroup>(id, ct);
        if (group is null) return Error(context, 404, null, $"No group {id}.");

        var now = clock.GetCurrentInstant();
        var wanted = members.ToHashSet(StringComparer.Ordinal);
        await ScimGroups.Set(session, bus, now, current, wanted, ct);
        group.DisplayName = displayName;
        group.DisplayNameKey = displayName.ToLowerInvariant();
        if (Get(body, "externalId") is { } externalId) group.ExternalId = String(externalId);
        group.LastModified = now;
        session.Store(group);
        return Answer(context, await ScimGroups.Render(context.Request, session, group, wanted, ct));
    }
}

public static class PatchScimGroupEndpoint
{
    [WolverinePatch("/scim/v2/Groups/{id}", OperationId = "scimPatchGroup"), Authorize(Policy = AuthPolicies.Scim)]
    [Tags("SCIM")]
    [EndpointSummary("Change a group (RFC 7644 §3.5.2): add, remove or replace members (each change the same as through /audiences/{id}/members), or rename it. 204 on success.")]
    [ScimBody(typeof(ScimPatchRequest)), ScimAnswer(null, StatusCodes.Status204NoContent, 400, 404, 409)]
    public static async Task<IResult> Patch(string id, HttpContext context, IDocumentSession session, IMessageBus bus, IClock clock)
    {
        var ct = context.RequestAborted;
        var (body, error) = await ReadObject(context);
        if (body is null) return error!;
        var (patch, refusal) = GroupPatch.Read(body);
        if (patch is null) return Error(context, refusal!.Status, refusal.ScimType, refusal.Detail);

        if (patch.DisplayName is { } renamed && await ScimGroups.NameTaken(session, renamed, id, ct))
            return Error(context, 409, "uniqueness", $"displayName {renamed} is taken by another group.");
        var current = await ScimGroups.Lock(session, id, patch.MayJoin, ct);
        var group = await session.LoadAsync<ScimGroup>(id, ct);
        if (group is null) return Error(context, 404, null, $"No group {id}.");

        var now = clock.GetCurrentInstant();
        if (patch.ChangesMembers)
            await ScimGroups.Set(session, bus, now, current, patch.Apply(current.All), ct);
        if (patch.DisplayName is { } name) { group.DisplayName = name; group.DisplayNameKey = name.ToLowerInvariant(); }
        if (patch.ExternalIdChanged) group.ExternalId = patch.ExternalId;
        group.LastModified = now;
        session.Store(group);
        return Results.NoContent();
    }
}

public static class DeleteScimGroupEndpoint
{
    [WolverineDelete("/scim/v2/Groups/{id}", OperationId = "scimDeleteGroup"), Authorize(Policy = AuthPolicies.Scim)]
    [Tags("SCIM")]
    [EndpointSummary("Deprovision a group: every member leaves its audience (their enrolments in its assignments archived, as through DELETE /audiences/{id}/members/{userId}).")]
    [ScimAnswer(null, StatusCodes.Status204NoContent, 404)]
    public static async Task<IResult> Delete(string id, HttpContext context, IDocumentSession session, IMessageBus bus, IClock clock)
    {
        var ct = context.RequestAborted;
        var current = await ScimGroups.Lock(session, id, [], ct);
        var group = await session.LoadAsync<ScimGroup>(id, ct);
        if (group is null) return Error(context, 404, null, $"No group {id}.");
        await ScimGroups.Set(session, bus, clock.GetCurrentInstant(), current, new HashSet<string>(), ct);
        session.Delete(group);
        return Results.NoContent();
    }
}
