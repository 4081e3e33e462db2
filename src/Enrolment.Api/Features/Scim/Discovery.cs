using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Enrolment.Api.Infrastructure.Auth;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Wolverine.Http;
using static Enrolment.Api.Features.Scim.ScimWire;

namespace Enrolment.Api.Features.Scim;

/// <summary>What the service supports (RFC 7643 §5): patch and filter, not bulk, sort, change-password or ETags.</summary>
public sealed record ScimServiceProviderConfig(string[] Schemas, string DocumentationUri, ScimSupported Patch, ScimBulk Bulk, ScimFilterSupport Filter,
    ScimSupported ChangePassword, ScimSupported Sort, ScimSupported Etag, ScimAuthenticationScheme[] AuthenticationSchemes, ScimDiscoveryMeta Meta);
public sealed record ScimSupported(bool Supported);
public sealed record ScimBulk(bool Supported, int MaxOperations, int MaxPayloadSize);
public sealed record ScimFilterSupport(bool Supported, int MaxResults);
public sealed record ScimAuthenticationScheme(string Type, string Name, string Description, string SpecUri, bool Primary);
public sealed record ScimDiscoveryMeta(string ResourceType, string Location);

/// <summary>A resource type (RFC 7643 §6).</summary>
public sealed record ScimResourceType(string[] Schemas, string Id, string Name, string Endpoint, string Description, string Schema,
    ScimSchemaExtension[] SchemaExtensions, ScimDiscoveryMeta Meta);
public sealed record ScimSchemaExtension(string Schema, bool Required);
public sealed record ScimResourceTypeList(string[] Schemas, int TotalResults, int StartIndex, int ItemsPerPage,
    [property: JsonPropertyName("Resources")] ScimResourceType[] Resources);

/// <summary>A schema (RFC 7643 §7), its attributes one level deep with their sub-attributes.</summary>
public sealed record ScimSchema(string[] Schemas, string Id, string Name, string Description, ScimAttribute[] Attributes, ScimDiscoveryMeta Meta);
public sealed record ScimAttribute(string Name, string Type, bool MultiValued, string Description, bool Required, bool CaseExact,
    string Mutability, string Returned, string Uniqueness, ScimSubAttribute[] SubAttributes);
public sealed record ScimSubAttribute(string Name, string Type, bool MultiValued, string Description, bool Required, bool CaseExact,
    string Mutability, string Returned, string Uniqueness);
public sealed record ScimSchemaList(string[] Schemas, int TotalResults, int StartIndex, int ItemsPerPage,
    [property: JsonPropertyName("Resources")] ScimSchema[] Resources);

public static class ScimDiscoveryEndpoints
{
    private const string ServiceProviderConfigSchema = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
    private const string ResourceTypeSchema = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
    private const string SchemaSchema = "urn:ietf:params:scim:schemas:core:2.0:Schema";
    private const string EnterpriseUserSchema = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    [WolverineGet("/scim/v2/ServiceProviderConfig", OperationId = "scimServiceProviderConfig"), Authorize(Policy = AuthPolicies.Scim)]
    [Tags("SCIM")]
    [EndpointSummary("What this SCIM service supports: PATCH and filters (eq, and), not bulk, sort, change-password or ETags; bearer tokens and HTTP Basic.")]
    [ScimAnswer(typeof(ScimServiceProviderConfig), StatusCodes.Status200OK)]
    public static IResult ServiceProviderConfig(HttpContext context) => Typed(context, new ScimServiceProviderConfig(
        [ServiceProviderConfigSchema], "https://enrolment.example/docs/identity",
        new ScimSupported(true), new ScimBulk(false, 0, 0), new ScimFilterSupport(true, MaxCount),
        new ScimSupported(false), new ScimSupported(false), new ScimSupported(false),
        [
            new ScimAuthenticationScheme("oauthbearertoken", "OAuth Bearer Token",
                "A tenant secret with the api/scim scope as a static bearer token, or an access token from POST /oauth2/token.", "https://www.rfc-editor.org/info/rfc6750", true),
            new ScimAuthenticationScheme("httpbasic", "HTTP Basic", "The Tenant ID as username and an API secret as password.", "https://www.rfc-editor.org/info/rfc7617", false),
        ],
        new ScimDiscoveryMeta("ServiceProviderConfig", $"{context.Request.Scheme}://{context.Request.Host}{BasePath}/ServiceProviderConfig")));

    [WolverineGet("/scim/v2/ResourceTypes", OperationId = "scimResourceTypes"), Authorize(Policy = AuthPolicies.Scim)]
    [Tags("SCIM")]
    [EndpointSummary("The resource types served: User (with the enterprise extension, optional) and Group.")]
    [ScimAnswer(typeof(ScimResourceTypeList), StatusCodes.Status200OK)]
    public static IResult ResourceTypes(HttpContext context)
    {
        var base_ = $"{context.Request.Scheme}://{context.Request.Host}{BasePath}/ResourceTypes/";
        ScimResourceType[] types =
        [
            new([ResourceTypeSchema], "User", "User", "/Users", "A user: the service's user id is its id.", UserSchema,
                [new ScimSchemaExtension(EnterpriseUserSchema, false)], new ScimDiscoveryMeta("ResourceType", base_ + "User")),
            new([ResourceTypeSchema], "Group", "Group", "/Groups", "A group: an audience, whose members are enrolled in its assignments.", GroupSchema,
                [], new ScimDiscoveryMeta("ResourceType", base_ + "Group")),
        ];
        return Typed(context, new ScimResourceTypeList([ListSchema], types.Length, 1, types.Length, types));
    }

    [WolverineGet("/scim/v2/Schemas", OperationId = "scimSchemas"), Authorize(Policy = AuthPolicies.Scim)]
    [Tags("SCIM")]
    [EndpointSummary("The User and Group schemas: the attributes the service reads (other attributes are stored and returned as sent).")]
    [ScimAnswer(typeof(ScimSchemaList), StatusCodes.Status200OK)]
    public static IResult Schemas(HttpContext context)
    {
        var base_ = $"{context.Request.Scheme}://{context.Request.Host}{BasePath}/Schemas/";
        static ScimSubAttribute Sub(string name, string type, string description) => new(name, type, false, description, false, false, "readWrite", "default", "none");
        static ScimAttribute Attr(string name, string type, string description, bool required = false, bool multi = false, string uniqueness = "none",
            string mutability = "readWrite", bool caseExact = false, params ScimSubAttribute[] subs) =>
            new(name, type, multi, description, required, caseExact, mutability, "default", uniqueness, subs);
        var multiValue = new[] { Sub("value", "string", "The value."), Sub("type", "string", "A label: work, home, other."), Sub("primary", "boolean", "The preferred value."), Sub("display", "string", "A name for people.") };
        ScimSchema[] schemas =
        [
            new([SchemaSchema], UserSchema, "User", "A provisioned user.",
            [
                Attr("userName", "string", "Unique in the tenant, case-insensitive.", required: true, uniqueness: "server"),
                Attr("externalId", "string", "The provider's id; the user's id when it is a valid user id.", caseExact: true),
                Attr("active", "boolean", "false: a leaver, archived from every audience; true again: a rejoin."),
                Attr("displayName", "string", "A name for people."),
                Attr("name", "complex", "The user's name.", subs: [Sub("formatted", "string", "The full name."), Sub("familyName", "string", "The family name."), Sub("givenName", "string", "The given name.")]),
                Attr("emails", "complex", "Email addresses.", multi: true, subs: multiValue),
                Attr("groups", "complex", "Not kept: group membership is changed through Groups.", multi: true, mutability: "readOnly", subs: [Sub("value", "string", "The group id.")]),
            ], new ScimDiscoveryMeta("Schema", base_ + UserSchema)),
            new([SchemaSchema], GroupSchema, "Group", "A provisioned group: an audience.",
            [
                Attr("displayName", "string", "Unique in the tenant, case-insensitive.", required: true, uniqueness: "server"),
                Attr("externalId", "string", "The provider's id; the audience id when it is a valid audience id.", caseExact: true),
                Attr("members", "complex", "The members: user ids.", multi: true, subs: [Sub("value", "string", "The user id."), Sub("display", "string", "The user's userName."), Sub("$ref", "reference", "The user's resource.")]),
            ], new ScimDiscoveryMeta("Schema", base_ + GroupSchema)),
        ];
        return Typed(context, new ScimSchemaList([ListSchema], schemas.Length, 1, schemas.Length, schemas));
    }

    private static IResult Typed<T>(HttpContext context, T value) =>
        Answer(context, JsonSerializer.SerializeToNode(value, Infrastructure.Json.Options)!);
}
