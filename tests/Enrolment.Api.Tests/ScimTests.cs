using System.Text.Json.Nodes;
using Enrolment.Api.Infrastructure.Auth;
using static Enrolment.Api.Tests.Identity;

namespace Enrolment.Api.Tests;

/// <summary>
/// SCIM 2.0 as identity providers send it, end to end down to enrolments: Okta's and Entra ID's documented request
/// sequences (create user, create group, add members, remove members, deactivate, reactivate, delete group, delete user),
/// each membership change the same as through /audiences/{id}/members (fan-out, events, actor = the SCIM credential).
/// </summary>
public sealed class ScimTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private string scimSecret = "";
    private string scimSecretId = "";
    private string Bearer => "Bearer " + scimSecret;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        (scimSecret, scimSecretId) = await AddSecret(Host.Services, TenantId, Scopes.Scim);
    }

    private Task<ApiResponse> Scim(string method, string path, string? body = null, string? auth = null, string contentType = ScimJson, string? accept = null) =>
        Host.Call(method, "/scim/v2" + path, auth ?? Bearer, body, contentType, accept);

    private static string Q(string value) => Uri.EscapeDataString(value);

    /// <summary>The user's enrolment in the assignment: its status, or null when it has none.</summary>
    private async Task<string?> StatusOf(string userId, string assignmentId)
    {
        var items = (await Get($"/assignments/{assignmentId}/enrolments?userId={Q(userId)}")).AssertStatus(200).Json["items"]!.AsArray();
        return items.Count == 0 ? null : items[0]!.Str("status");
    }

    private Task WaitFor(string userId, string assignmentId, string? status) =>
        Eventually(async () => await StatusOf(userId, assignmentId) is var s && s == status ? (true, s ?? "none") : (false, s ?? "none"),
            $"{userId}'s enrolment in {assignmentId} is {status ?? "absent"}");

    private async Task<string[]> AudienceMembers(string audienceId) =>
        (await Get($"/audiences/{Q(audienceId)}/members")).AssertStatus(200).Json["userIds"]!.AsArray().Select(u => u!.GetValue<string>()).ToArray();

    private async Task<string[]> ScimMembers(string groupId) =>
        (await Scim("GET", $"/Groups/{Q(groupId)}")).AssertStatus(200).Json["members"]?.AsArray().Select(m => m!.Str("value")).Order().ToArray() ?? [];

    /// <summary>The actor of the latest event of the user's enrolment: a fan-out operation started by the SCIM secret.</summary>
    private async Task AssertStartedByScimSecret(string userId, string assignmentId)
    {
        var enrolment = (await Get($"/assignments/{assignmentId}/enrolments?userId={Q(userId)}")).Json["items"]![0]!;
        var events = (await Get($"/assignments/{assignmentId}/enrolments/{enrolment.Str("id")}/events")).AssertStatus(200).Json.AsArray();
        var actor = events[^1]!["actor"]!;
        Assert.Equal("operation", actor.Str("type"));
        Assert.Equal("secret", actor["startedBy"].Str("type"));
        Assert.Equal(scimSecretId, actor["startedBy"].Str("id"));
    }

    // ------------------------------------------------------------------------------------------------ Okta

    [Fact]
    public async Task Okta_sequence_create_user_create_group_add_remove_deactivate_reactivate_delete_group_delete_user()
    {
        await PutContent("okta-c1");
        // Okta checks whether the user exists, by userName, before creating it.
        var lookup = (await Scim("GET", $"/Users?filter={Q("userName eq \"alice@example.com\"")}&startIndex=1&count=100")).AssertStatus(200);
        Assert.Equal(0, lookup.Json["totalResults"]!.GetValue<int>());
        Assert.Equal("urn:ietf:params:scim:api:messages:2.0:ListResponse", lookup.Json["schemas"]![0]!.GetValue<string>());

        string OktaUser(string userName, string given, string oktaId) => $$"""
            {"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"{{userName}}",
             "name":{"givenName":"{{given}}","familyName":"Example"},
             "emails":[{"primary":true,"value":"{{userName}}","type":"work"}],
             "displayName":"{{given}} Example","locale":"en-US","externalId":"{{oktaId}}","groups":[],"password":"1mz050nq","active":true}
            """;
        var alice = (await Scim("POST", "/Users", OktaUser("alice@example.com", "Alice", "00u1alice"))).AssertStatus(201);
        Assert.Equal("00u1alice", alice.Json.Str("id")); // externalId, a valid user id, is the id every route uses
        Assert.EndsWith("/scim/v2/Users/00u1alice", alice.Headers.Location.ToString());
        Assert.Null(alice.Json["password"]);
        Assert.True(alice.Json["active"]!.GetValue<bool>());
        Assert.Equal("User", alice.Json["meta"].Str("resourceType"));
        (await Scim("POST", "/Users", OktaUser("bob@example.com", "Bob", "00u2bob"))).AssertStatus(201);
        (await Scim("GET", "/Users/00u1alice")).AssertStatus(200);

        // Push group: lookup by displayName, then create with no members.
        Assert.Equal(0, (await Scim("GET", $"/Groups?filter={Q("displayName eq \"Finance\"")}&startIndex=1&count=100")).Json["totalResults"]!.GetValue<int>());
        var group = (await Scim("POST", "/Groups", """{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Finance","members":[]}""")).AssertStatus(201);
        var groupId = group.Json.Str("id");
        var assignment = await CreateAssignment(groupId, "okta-c1");

        // Add members.
        (await Scim("PATCH", $"/Groups/{groupId}", """
            {"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members",
             "value":[{"value":"00u1alice","display":"alice@example.com"},{"value":"00u2bob","display":"bob@example.com"}]}]}
            """)).AssertStatus(204);
        Assert.Equal(["00u1alice", "00u2bob"], await AudienceMembers(groupId));
        await WaitFor("00u1alice", assignment, "open");
        await WaitFor("00u2bob", assignment, "open");
        await AssertStartedByScimSecret("00u1alice", assignment);
        var members = (await Scim("GET", $"/Groups/{groupId}")).Json["members"]!.AsArray();
        Assert.Contains(members, m => m!.Str("value") == "00u1alice" && m.Str("display") == "alice@example.com");

        // Rename, as Okta sends it (value object with id and displayName, no path).
        (await Scim("PATCH", $"/Groups/{groupId}", $$$"""{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"id":"{{{groupId}}}","displayName":"Finance EMEA"}}]}""")).AssertStatus(204);
        Assert.Equal("Finance EMEA", (await Scim("GET", $"/Groups/{groupId}")).Json.Str("displayName"));

        // Remove a member: members[value eq "…"].
        (await Scim("PATCH", $"/Groups/{groupId}", """{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"00u2bob\"]"}]}""")).AssertStatus(204);
        await WaitFor("00u2bob", assignment, "archived");
        Assert.Equal(["00u1alice"], await AudienceMembers(groupId));

        // Deactivate: replace with a value object and no path. A leaver: archived, still a SCIM member of the group.
        var deactivated = (await Scim("PATCH", "/Users/00u1alice", """{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}""")).AssertStatus(200);
        Assert.False(deactivated.Json["active"]!.GetValue<bool>());
        await WaitFor("00u1alice", assignment, "archived");
        Assert.Empty(await AudienceMembers(groupId));
        Assert.Equal(["00u1alice"], await ScimMembers(groupId));

        // Reactivate: counted as a member again, the same enrolment reinstated (history kept).
        (await Scim("PATCH", "/Users/00u1alice", """{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":true}}]}""")).AssertStatus(200);
        await WaitFor("00u1alice", assignment, "open");
        Assert.Equal(["00u1alice"], await AudienceMembers(groupId));
        var enrolment = (await Get($"/assignments/{assignment}/enrolments?userId=00u1alice")).Json["items"]![0]!;
        Assert.Equal(["enrolment.assigned", "enrolment.archived", "enrolment.reinstated"],
            enrolment["eventLog"]!.AsArray().Select(e => e!.Str("eventType")).ToArray());

        // Profile update: Okta PUTs the whole user.
        var put = (await Scim("PUT", "/Users/00u1alice", """
            {"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"00u1alice","userName":"alice@example.com",
             "name":{"givenName":"Alicia","familyName":"Example"},"emails":[{"primary":true,"value":"alice@example.com","type":"work"}],
             "active":true,"externalId":"00u1alice"}
            """)).AssertStatus(200);
        Assert.Equal("Alicia", put.Json["name"].Str("givenName"));
        Assert.Null(put.Json["locale"]); // PUT replaces

        // Delete the group: every member leaves.
        (await Scim("DELETE", $"/Groups/{groupId}")).AssertStatus(204);
        await WaitFor("00u1alice", assignment, "archived");
        Assert.Empty(await AudienceMembers(groupId));
        (await Scim("GET", $"/Groups/{groupId}")).AssertScimError(404);

        (await Scim("DELETE", "/Users/00u1alice")).AssertStatus(204);
        (await Scim("GET", "/Users/00u1alice")).AssertScimError(404);
        (await Scim("DELETE", "/Users/00u1alice")).AssertScimError(404);
    }

    // ------------------------------------------------------------------------------------------------ Entra ID

    [Fact]
    public async Task Entra_ID_sequence_create_user_create_group_add_remove_disable_enable_delete_group_delete_user()
    {
        await PutContent("entra-c1");
        (await Scim("GET", $"/Users?filter={Q("userName eq \"jdoe@contoso.com\"")}")).AssertStatus(200);
        var created = (await Scim("POST", "/Users", """
            {"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
             "externalId":"jdoe","userName":"jdoe@contoso.com","active":true,
             "emails":[{"primary":true,"type":"work","value":"jdoe@contoso.com"}],
             "meta":{"resourceType":"User"},"name":{"formatted":"John Doe","familyName":"Doe","givenName":"John"},"roles":[],
             "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales","employeeNumber":"701984"}}
            """)).AssertStatus(201);
        Assert.Equal("jdoe", created.Json.Str("id"));
        Assert.Contains("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", created.Json["schemas"]!.AsArray().Select(s => s!.GetValue<string>()));
        Assert.Equal("Sales", (await Scim("GET", "/Users/jdoe")).Json["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].Str("department"));
        var byExternalId = (await Scim("GET", $"/Users?filter={Q("externalId eq \"jdoe\"")}")).AssertStatus(200);
        Assert.Equal(1, byExternalId.Json["totalResults"]!.GetValue<int>());

        // Group: look up by displayName (members excluded), create with Entra's extra schema and objectId as externalId.
        var none = (await Scim("GET", $"/Groups?excludedAttributes=members&filter={Q("displayName eq \"Sales\"")}")).AssertStatus(200);
        Assert.Equal(0, none.Json["totalResults"]!.GetValue<int>());
        var groupId = "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159";
        var group = (await Scim("POST", "/Groups", $$$"""
            {"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group","http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
             "externalId":"{{{groupId}}}","displayName":"Sales","meta":{"resourceType":"Group"}}
            """)).AssertStatus(201);
        Assert.Equal(groupId, group.Json.Str("id")); // externalId, a valid audience id, is the audience id
        var found = (await Scim("GET", $"/Groups?excludedAttributes=members&filter={Q("displayName eq \"Sales\"")}")).AssertStatus(200);
        Assert.Equal(1, found.Json["totalResults"]!.GetValue<int>());
        Assert.Null(found.Json["Resources"]![0]!["members"]);
        Assert.Null((await Scim("GET", $"/Groups/{groupId}?excludedAttributes=members")).AssertStatus(200).Json["members"]);
        var assignment = await CreateAssignment(groupId, "entra-c1");

        // Add a member: "Add", path members, a value list with $ref null.
        (await Scim("PATCH", $"/Groups/{groupId}", """{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"members","value":[{"$ref":null,"value":"jdoe"}]}]}""")).AssertStatus(204);
        await WaitFor("jdoe", assignment, "open");
        await AssertStartedByScimSecret("jdoe", assignment);
        // Entra ID checks membership with a members filter.
        var isMember = (await Scim("GET", $"/Groups?excludedAttributes=members&filter={Q($"id eq \"{groupId}\" and members[value eq \"jdoe\"]")}")).AssertStatus(200);
        Assert.Equal(1, isMember.Json["totalResults"]!.GetValue<int>());

        // Update user, multi-valued and single-valued attributes, "Replace" with paths.
        var updated = (await Scim("PATCH", "/Users/jdoe", """
            {"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
             {"op":"Replace","path":"emails[type eq \"work\"].value","value":"john.doe@contoso.com"},
             {"op":"Replace","path":"name.familyName","value":"Doe-Smith"},
             {"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Sales EMEA"}]}
            """)).AssertStatus(200);
        Assert.Equal("john.doe@contoso.com", updated.Json["emails"]![0].Str("value"));
        Assert.Equal("Doe-Smith", updated.Json["name"].Str("familyName"));
        Assert.Equal("John", updated.Json["name"].Str("givenName"));
        Assert.Equal("Sales EMEA", updated.Json["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].Str("department"));
        var renamed = (await Scim("PATCH", "/Users/jdoe", """{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"userName","value":"john.doe@contoso.com"}]}""")).AssertStatus(200);
        Assert.Equal("john.doe@contoso.com", renamed.Json.Str("userName"));
        Assert.Equal("jdoe", renamed.Json.Str("id")); // the id never changes

        // Remove the member: path members with a value list.
        (await Scim("PATCH", $"/Groups/{groupId}", """{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Remove","path":"members","value":[{"$ref":null,"value":"jdoe"}]}]}""")).AssertStatus(204);
        await WaitFor("jdoe", assignment, "archived");
        (await Scim("PATCH", $"/Groups/{groupId}", """{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"members","value":[{"$ref":null,"value":"jdoe"}]}]}""")).AssertStatus(204);
        await WaitFor("jdoe", assignment, "open");

        // Disable (as Entra ID sent booleans before its 2020 fix: "False") and enable.
        var disabled = (await Scim("PATCH", "/Users/jdoe", """{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}""")).AssertStatus(200);
        Assert.False(disabled.Json["active"]!.GetValue<bool>());
        await WaitFor("jdoe", assignment, "archived");
        Assert.Empty(await AudienceMembers(groupId));
        (await Scim("PATCH", "/Users/jdoe", """{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":true}]}""")).AssertStatus(200);
        await WaitFor("jdoe", assignment, "open");

        // Rename the group.
        (await Scim("PATCH", $"/Groups/{groupId}", """{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"displayName","value":"Sales EMEA"}]}""")).AssertStatus(204);
        Assert.Equal("Sales EMEA", (await Scim("GET", $"/Groups/{groupId}?excludedAttributes=members")).Json.Str("displayName"));

        (await Scim("DELETE", $"/Groups/{groupId}")).AssertStatus(204);
        await WaitFor("jdoe", assignment, "archived");
        (await Scim("DELETE", "/Users/jdoe")).AssertStatus(204);
        (await Scim("GET", "/Users/jdoe")).AssertScimError(404);
    }

    // ------------------------------------------------------------------------------------------------ the rest of the contract

    [Fact]
    public async Task Deleting_an_active_member_is_a_leaver_and_a_deactivated_user_joins_groups_only_when_reactivated()
    {
        await PutContent("lv-c1");
        (await Scim("POST", "/Users", """{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"carol@example.com"}""")).AssertStatus(201);
        (await Scim("POST", "/Users", """{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"dave@example.com","active":false}""")).AssertStatus(201);
        var groupId = (await Scim("POST", "/Groups", """{"displayName":"Ops","members":[{"value":"carol@example.com"},{"value":"dave@example.com"}]}""")).AssertStatus(201).Json.Str("id");
        var assignment = await CreateAssignment(groupId, "lv-c1");
        await WaitFor("carol@example.com", assignment, "open");
        Assert.Equal(["carol@example.com"], await AudienceMembers(groupId)); // dave is inactive: a SCIM member only
        Assert.Equal(["carol@example.com", "dave@example.com"], await ScimMembers(groupId));

        (await Scim("DELETE", "/Users/carol@example.com")).AssertStatus(204);
        await WaitFor("carol@example.com", assignment, "archived");
        Assert.Equal(["dave@example.com"], await ScimMembers(groupId));

        (await Scim("PATCH", "/Users/dave@example.com", """{"Operations":[{"op":"replace","path":"active","value":true}]}""")).AssertStatus(200);
        await WaitFor("dave@example.com", assignment, "open");
        Assert.Equal(["dave@example.com"], await AudienceMembers(groupId));

        // PUT of the group replaces its members, the same as PUT /audiences/{id}/members.
        (await Scim("PUT", $"/Groups/{groupId}", """{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Ops","members":[]}""")).AssertStatus(200);
        await WaitFor("dave@example.com", assignment, "archived");
    }

    [Fact]
    public async Task Discovery_says_patch_and_filter_yes_bulk_sort_and_change_password_no()
    {
        var config = (await Scim("GET", "/ServiceProviderConfig")).AssertStatus(200).Json;
        Assert.True(config["patch"]!["supported"]!.GetValue<bool>());
        Assert.True(config["filter"]!["supported"]!.GetValue<bool>());
        Assert.False(config["bulk"]!["supported"]!.GetValue<bool>());
        Assert.False(config["sort"]!["supported"]!.GetValue<bool>());
        Assert.False(config["changePassword"]!["supported"]!.GetValue<bool>());
        var types = (await Scim("GET", "/ResourceTypes")).AssertStatus(200).Json["Resources"]!.AsArray();
        Assert.Equal(["Group", "User"], types.Select(t => t!.Str("id")).Order().ToArray());
        var schemas = (await Scim("GET", "/Schemas")).AssertStatus(200).Json["Resources"]!.AsArray();
        Assert.Contains(schemas, s => s!.Str("id") == "urn:ietf:params:scim:schemas:core:2.0:User");
    }

    [Fact]
    public async Task Errors_are_SCIM_error_documents()
    {
        (await Scim("GET", "/Users/nobody")).AssertScimError(404);
        (await Scim("GET", $"/Users?filter={Q("userName co \"a\"")}")).AssertScimError(400, "invalidFilter");
        (await Scim("GET", $"/Users?filter={Q("title eq \"a\"")}")).AssertScimError(400, "invalidFilter");
        (await Scim("POST", "/Users", "{not json")).AssertScimError(400, "invalidSyntax");
        (await Scim("POST", "/Users", """{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]}""")).AssertScimError(400, "invalidValue");
        (await Scim("POST", "/Users", """{"userName":"x"}""", contentType: "text/plain")).AssertScimError(415);
        (await Scim("PATCH", "/Users/nobody", """{"Operations":[{"op":"replace","path":"active","value":false}]}""")).AssertScimError(404);

        (await Scim("POST", "/Users", """{"userName":"Erin@Example.com"}""")).AssertStatus(201);
        (await Scim("POST", "/Users", """{"userName":"erin@example.com","externalId":"other-id"}""")).AssertScimError(409, "uniqueness");
        (await Scim("POST", "/Groups", """{"displayName":"Dup"}""")).AssertStatus(201);
        (await Scim("POST", "/Groups", """{"displayName":"dup"}""")).AssertScimError(409, "uniqueness");
        (await Scim("PATCH", "/Users/Erin@Example.com", """{"Operations":[{"op":"jump","path":"active","value":false}]}""")).AssertScimError(400, "invalidSyntax");
        (await Scim("PATCH", "/Users/Erin@Example.com", """{"Operations":[{"op":"remove"}]}""")).AssertScimError(400, "noTarget");
        (await Scim("PATCH", "/Users/Erin@Example.com", """{"Operations":[{"op":"replace","path":"active","value":"maybe"}]}""")).AssertScimError(400, "invalidValue");

        // Authentication and scope, in SCIM's terms too.
        var anonymous = await Host.Call("GET", "/scim/v2/Users", null);
        anonymous.AssertScimError(401);
        Assert.StartsWith("Bearer", anonymous.Headers.WWWAuthenticate.ToString());
        (await Scim("GET", "/Users", auth: "Bearer es_not-a-secret")).AssertScimError(401);
        (await Scim("GET", "/Users", auth: Basic(TenantId, ReadSecret))).AssertScimError(403);
    }

    [Fact]
    public async Task Ids_come_from_externalId_else_userName_else_are_generated_and_lists_page_with_startIndex_and_count()
    {
        Assert.Equal("ext-1", (await Scim("POST", "/Users", """{"userName":"u1@example.com","externalId":"ext-1"}""")).AssertStatus(201).Json.Str("id"));
        Assert.Equal("u2@example.com", (await Scim("POST", "/Users", """{"userName":"u2@example.com","externalId":"has spaces"}""")).AssertStatus(201).Json.Str("id"));
        var generated = (await Scim("POST", "/Users", """{"userName":"Ünïcode Name"}""")).AssertStatus(201).Json.Str("id");
        Assert.Matches("^[0-9a-f-]{36}$", generated);

        var page = (await Scim("GET", "/Users?startIndex=2&count=1")).AssertStatus(200).Json;
        Assert.Equal(3, page["totalResults"]!.GetValue<int>());
        Assert.Equal(2, page["startIndex"]!.GetValue<int>());
        Assert.Equal(1, page["itemsPerPage"]!.GetValue<int>());
        Assert.Single(page["Resources"]!.AsArray());
        Assert.Equal(0, (await Scim("GET", "/Users?count=0")).Json["itemsPerPage"]!.GetValue<int>());
        // userName matches case-insensitively.
        Assert.Equal(1, (await Scim("GET", $"/Users?filter={Q("userName eq \"U1@EXAMPLE.COM\"")}")).Json["totalResults"]!.GetValue<int>());
    }

    [Fact]
    public async Task Both_media_types_are_read_and_answered()
    {
        var asJson = await Scim("POST", "/Users", """{"userName":"json@example.com"}""", contentType: "application/json", accept: "application/json");
        asJson.AssertStatus(201);
        Assert.StartsWith("application/json", asJson.ContentType);
        var asScim = (await Scim("GET", "/Users/json@example.com", accept: "application/scim+json")).AssertStatus(200);
        Assert.StartsWith("application/scim+json", asScim.ContentType);
    }

    [Fact]
    public void Every_scim_route_is_documented_with_scim_errors_and_bearer_security()
    {
        var document = OpenApi.OpenApiContract.Document(Host);
        var scim = document["paths"]!.AsObject().Where(p => p.Key.StartsWith("/scim/v2", StringComparison.Ordinal)).ToList();
        Assert.True(scim.Count >= 7, "SCIM paths documented: " + string.Join(", ", scim.Select(p => p.Key)));
        foreach (var (path, item) in scim)
            foreach (var (method, operation) in item!.AsObject())
            {
                Assert.Contains(operation!["security"]!.AsArray(), r => r!.AsObject().ContainsKey("bearer"));
                var unauthorized = operation["responses"]!["401"]!["content"]!.AsObject();
                Assert.True(unauthorized.ContainsKey(ScimJson), $"{method} {path}: 401 as {ScimJson}");
            }
    }
}
