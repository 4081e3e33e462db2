using System.Text.Json.Nodes;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Api.Infrastructure.OpenApi;
using Marten;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using NodaTime;
using Wolverine;
using Wolverine.Http;
using static Enrolment.Api.Features.Scim.ScimWire;

namespace Enrolment.Api.Features.Scim;

public static class CreateScimUserEndpoint
{
    [WolverinePost("/scim/v2/Users", OperationId = "scimCreateUser"), Authorize(Policy = AuthPolicies.Scim)]
    [Tags("SCIM")]
    [EndpointSummary("Provision a user (RFC 7644 §3.3). Its id, which never changes, is the user id of every other route: the externalId when it is a valid user id, else the userName when valid, else a generated one.")]
    [ScimBody(typeof(ScimUserResource)), ScimAnswer(typeof(ScimUserResource), StatusCodes.Status201Created, 400, 409)]
    public static async Task<IResult> Post(HttpContext context, IDocumentSession session, IClock clock)
    {
        var ct = context.RequestAborted;
        var (body, error) = await ReadObject(context);
        if (body is null) return error!;
        var attributes = ScimUsers.Writable(body);
        if (ScimUsers.Read(attributes, out var userName, out var externalId, out var active) is { } refusal) return Error(context, refusal.Status, refusal.ScimType, refusal.Detail);

        var id = ScimUsers.ChooseId(userName, externalId);
        await ScimUsers.Lock(session, id, ct);
        if (await session.LoadAsync<ScimUser>(id, ct) is not null)
            return Error(context, 409, "uniqueness", $"A user with id {id} exists already (its externalId or userName).");
        if (await ScimUsers.NameTaken(session, userName, id, ct))
            return Error(context, 409, "uniqueness", $"userName {userName} is taken by another user.");

        var now = clock.GetCurrentInstant();
        var user = new ScimUser { Id = id, Created = now };
        // A user created inactive is a member of nothing until activated: nothing to leave.
        ScimUsers.Store(session, user, attributes, userName, externalId, active, now);
        context.Response.Headers.Location = Location(context.Request, ScimUsers.Resource, id);
        return Answer(context, ScimUsers.Render(context.Request, user), StatusCodes.Status201Created);
    }
}

public static class GetScimUserEndpoint
{
    [WolverineGet("/scim/v2/Users/{id}", OperationId = "scimGetUser"), Authorize(Policy = AuthPolicies.Scim)]
    [Tags("SCIM")]
    [EndpointSummary("A provisioned user, with the attributes the provider sent.")]
    [ScimAnswer(typeof(ScimUserResource), StatusCodes.Status200OK, 404)]
    public static async Task<IResult> Get(string id, string? attributes, string? excludedAttributes, HttpContext context, IQuerySession session)
    {
        var user = await session.LoadAsync<ScimUser>(id, context.RequestAborted);
        return user is null
            ? Error(context, 404, null, $"No user {id}.")
            : Answer(context, Project(ScimUsers.Render(context.Request, user), attributes, excludedAttributes));
    }
}

public static class ListScimUsersEndpoint
{
    [WolverineGet("/scim/v2/Users", OperationId = "scimListUsers"), Authorize(Policy = AuthPolicies.Scim)]
    [Tags("SCIM")]
    [EndpointSummary("Users, filtered with eq on userName (case-insensitive), externalId or id (joined by and), paged with startIndex (from 1) and count (default 100, at most 1000), in id order.")]
    [ScimAnswer(typeof(ScimUserList), StatusCodes.Status200OK, 400)]
    public static async Task<IResult> Get(string? filter, int? startIndex, int? count, string? attributes, string? excludedAttributes, HttpContext context, IQuerySession session)
    {
        var ct = context.RequestAborted;
        if (!ScimFilter.TryParse(filter, out var conditions, out var error)) return Error(context, 400, "invalidFilter", error!);
        var unsupported = conditions.FirstOrDefault(c => c.Attribute is not ("username" or "externalid" or "id"));
        if (unsupported is not null) return Error(context, 400, "invalidFilter", $"Users filter on userName, externalId or id; not on {unsupported.Attribute}.");
        var (start, take) = Page(startIndex, count);

        if (conditions.Any(c => c.Value is null && c.Attribute != "externalid"))
            return Answer(context, List([], 0, start));
        IQueryable<ScimUser> query = session.Query<ScimUser>();
        foreach (var c in conditions)
        {
            var value = c.Value;
            var key = value?.ToLowerInvariant();
            query = c.Attribute switch
            {
                "username" => query.Where(u => u.UserNameKey == key),
                "externalid" => value is null ? query.Where(u => u.ExternalId == null) : query.Where(u => u.ExternalId == value),
                _ => query.Where(u => u.Id == value),
            };
        }
        var total = await query.CountAsync(ct);
        var page = take == 0 ? [] : await query.OrderBy(u => u.Id).Skip(start - 1).Take(take).ToListAsync(ct);
        return Answer(context, List(page.Select(u => Project(ScimUsers.Render(context.Request, u), attributes, excludedAttributes)), total, start));
    }
}

public static class ReplaceScimUserEndpoint
{
    [WolverinePut("/scim/v2/Users/{id}", OperationId = "scimReplaceUser"), Authorize(Policy = AuthPolicies.Scim)]
    [Tags("SCIM")]
    [EndpointSummary("Replace a user's attributes (RFC 7644 §3.5.1); its id stays. active false is a leaver (archived from every audience), active true again a rejoin.")]
    [ScimBody(typeof(ScimUserResource)), ScimAnswer(typeof(ScimUserResource), StatusCodes.Status200OK, 400, 404, 409)]
    public static async Task<IResult> Put(string id, HttpContext context, IDocumentSession session, IMessageBus bus, IClock clock)
    {
        var (body, error) = await ReadObject(context);
        if (body is null) return error!;
        return await UserChange.Apply(id, context, session, bus, clock, _ => (ScimUsers.Writable(body), null));
    }
}

public static class PatchScimUserEndpoint
{
    [WolverinePatch("/scim/v2/Users/{id}", OperationId = "scimPatchUser"), Authorize(Policy = AuthPolicies.Scim)]
    [Tags("SCIM")]
    [EndpointSummary("Change some of a user's attributes (RFC 7644 §3.5.2): add, replace or remove, op names in any case, with or without a path. active false is a leaver, active true again a rejoin.")]
    [ScimBody(typeof(ScimPatchRequest)), ScimAnswer(typeof(ScimUserResource), StatusCodes.Status200OK, 400, 404, 409)]
    public static async Task<IResult> Patch(string id, HttpContext context, IDocumentSession session, IMessageBus bus, IClock clock)
    {
        var (body, error) = await ReadObject(context);
        if (body is null) return error!;
        return await UserChange.Apply(id, context, session, bus, clock, current =>
        {
            var patched = (JsonObject)current.DeepClone();
            return UserPatch.Apply(patched, body) is { } refusal ? (null, refusal) : (patched, null);
        });
    }
}

public static class DeleteScimUserEndpoint
{
    [WolverineDelete("/scim/v2/Users/{id}", OperationId = "scimDeleteUser"), Authorize(Policy = AuthPolicies.Scim)]
    [Tags("SCIM")]
    [EndpointSummary("Deprovision a user: a leaver (their enrolments in every audience archived, history kept) whose group memberships are forgotten.")]
    [ScimAnswer(null, StatusCodes.Status204NoContent, 404)]
    public static async Task<IResult> Delete(string id, HttpContext context, IDocumentSession session, IMessageBus bus, IClock clock)
    {
        var ct = context.RequestAborted;
        await ScimUsers.Lock(session, id, ct);
        var user = await session.LoadAsync<ScimUser>(id, ct);
        if (user is null) return Error(context, 404, null, $"No user {id}.");
        await Leavers.Leave(session, bus, clock.GetCurrentInstant(), id, remember: false, ct);
        session.Delete(user);
        return Results.NoContent();
    }
}

/// <summary>PUT and PATCH of a user: the same steps around a different change of its attributes.</summary>
internal static class UserChange
{
    public static async Task<IResult> Apply(string id, HttpContext context, IDocumentSession session, IMessageBus bus, IClock clock,
        Func<JsonObject, (JsonObject? Attributes, ScimRefusal? Refusal)> change)
    {
        var ct = context.RequestAborted;
        await ScimUsers.Lock(session, id, ct);
        var user = await session.LoadAsync<ScimUser>(id, ct);
        if (user is null) return Error(context, 404, null, $"No user {id}.");

        var (attributes, refusal) = change(JsonNode.Parse(user.Attributes) as JsonObject ?? new JsonObject());
        if (attributes is null) return Error(context, refusal!.Status, refusal.ScimType, refusal.Detail);
        foreach (var name in UserPatch.ReadOnly) Remove(attributes, name);
        if (ScimUsers.Read(attributes, out var userName, out var externalId, out var active) is { } invalid) return Error(context, invalid.Status, invalid.ScimType, invalid.Detail);
        if (!string.Equals(userName, user.UserName, StringComparison.OrdinalIgnoreCase) && await ScimUsers.NameTaken(session, userName, id, ct))
            return Error(context, 409, "uniqueness", $"userName {userName} is taken by another user.");

        var now = clock.GetCurrentInstant();
        if (user.Active && !active) await Leavers.Leave(session, bus, now, id, remember: true, ct);
        else if (!user.Active && active) await Leavers.Rejoin(session, bus, now, id, ct);
        ScimUsers.Store(session, user, attributes, userName, externalId, active, now);
        return Answer(context, ScimUsers.Render(context.Request, user));
    }
}
