using System.Text.RegularExpressions;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using Scalar.AspNetCore;

namespace Enrolment.Api.Infrastructure.OpenApi;

/// <summary>
/// The OpenAPI document at /openapi/v1.json and the interactive page at /docs. The document is generated from the
/// endpoints' own metadata (routes, bodies, <c>[ProducesResponseType]</c>, authorization policies); the transformers
/// here add what is true of every route, so that it cannot drift from the code. OpenAPI 3.1: its security
/// requirements may name the scopes a Basic route needs.
/// </summary>
public static partial class OpenApiSetup
{
    public const string DocumentName = "v1";

    public static IServiceCollection AddEnrolmentOpenApi(this IServiceCollection services) =>
        services.AddOpenApi(DocumentName, o =>
        {
            o.OpenApiVersion = OpenApiSpecVersion.OpenApi3_1;
            o.AddSchemaTransformer<ApiVocabulary>();
            o.AddOperationTransformer(HumanDescription);
            o.AddOperationTransformer(DocumentedBodyAttribute.Transform);
            o.AddOperationTransformer(CsvAnswerAttribute.Transform);
            o.AddOperationTransformer(QueryValuesAttribute.Transform);
            o.AddOperationTransformer<SecurityRequirements>();
            o.AddOperationTransformer<StandardResponses>();
            o.AddDocumentTransformer(Describe);
        });

    public static void MapEnrolmentOpenApi(this WebApplication app)
    {
        // Only the documents that exist match, so any other name is the API's own 404 problem document.
        app.MapOpenApi("/openapi/{documentName:regex(^v1$)}.json");
        app.MapScalarApiReference("/docs", o => ForSelfHosting(o)
            .WithTitle("Enrolment API")
            .WithOpenApiRoutePattern("/openapi/{documentName}.json")
            .AddPreferredSecuritySchemes(SecurityRequirements.BasicScheme)
            .AddHttpAuthentication(SecurityRequirements.BasicScheme, basic => basic.Username = "eu-west-2_AbcdEfghI"));
    }

    /// <summary>
    /// A self-hosted service's API page calls out to nobody and sells nothing: no AI chat, no MCP, no developer-tools
    /// toolbar (its deploy, SDK and share buttons), no telemetry, no ".NET" flag for Scalar's cloud features.
    /// </summary>
    private static ScalarOptions ForSelfHosting(ScalarOptions o)
    {
        o.Agent = new ScalarAgentOptions { Disabled = true };
        o.Mcp = new ScalarMcpOptions { Disabled = true };
        o.ShowDeveloperTools = DeveloperToolsVisibility.Never;
        o.Telemetry = false;
        o.DotNetFlag = false;
        return o;
    }

    [GeneratedRegex(@"^[A-Z]+(_[A-Za-z0-9]+)+$", RegexOptions.CultureInvariant)]
    private static partial Regex GeneratedName();

    /// <summary>
    /// The short title of each operation, as the API page's navigation shows it; the endpoint's own sentence
    /// ([EndpointSummary]) becomes the description. OpenApiDocumentTests fails for an operation missing here.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> Titles = new Dictionary<string, string>
    {
        ["listAssignments"] = "List assignments", ["createAssignment"] = "Create an assignment", ["getAssignment"] = "Get an assignment",
        ["removeAssignment"] = "Remove an assignment", ["getAssignmentSummary"] = "Get an assignment's summary", ["getUserSummary"] = "Get a user's summary",
        ["listAssignmentEnrolments"] = "List an assignment's enrolments", ["listUserEnrolments"] = "List a user's enrolments", ["getEnrolment"] = "Get an enrolment",
        ["getEnrolmentEvents"] = "Get an enrolment's events", ["recordReminder"] = "Record a reminder", ["archiveEnrolment"] = "Archive an enrolment",
        ["waiveEnrolment"] = "Waive an enrolment", ["extendEnrolment"] = "Extend a due date",
        ["putContent"] = "Name a content item", ["getContent"] = "Get a content item",
        ["replaceAudienceMembers"] = "Replace an audience's members", ["addAudienceMembers"] = "Add audience members",
        ["removeAudienceMember"] = "Remove an audience member", ["getAudienceMembers"] = "List an audience's members",
        ["recordCompletion"] = "Record a completion", ["recordCompletionsInBulk"] = "Record completions in bulk", ["getOperation"] = "Get an operation's progress",
        ["listChanges"] = "Read the change feed", ["exportAudit"] = "Export the audit trail",
        ["createWebhook"] = "Subscribe a webhook", ["listWebhooks"] = "List webhooks", ["getWebhook"] = "Get a webhook", ["deleteWebhook"] = "Delete a webhook",
        ["enableWebhook"] = "Enable a webhook again", ["listWebhookDeliveries"] = "List a webhook's deliveries", ["redeliverWebhookDelivery"] = "Redeliver a delivery",
        ["getAsyncApiDocument"] = "Get the AsyncAPI document",
        ["thriveListEnrolments"] = "Thrive: list enrolments", ["thriveGetEnrolment"] = "Thrive: get an enrolment",
        ["thriveRecordCompletion"] = "Thrive: record a completion", ["thriveListCompletions"] = "Thrive: list completions",
        ["thriveAddAudienceMembers"] = "Thrive: add audience members", ["getTrainingDetails"] = "Mimecast: get training details",
        ["issueAccessToken"] = "Get an access token",
        ["scimServiceProviderConfig"] = "SCIM: service provider config", ["scimResourceTypes"] = "SCIM: resource types", ["scimSchemas"] = "SCIM: schemas",
        ["scimCreateUser"] = "SCIM: create a user", ["scimGetUser"] = "SCIM: get a user", ["scimListUsers"] = "SCIM: list users",
        ["scimReplaceUser"] = "SCIM: replace a user", ["scimPatchUser"] = "SCIM: patch a user", ["scimDeleteUser"] = "SCIM: delete a user",
        ["scimCreateGroup"] = "SCIM: create a group", ["scimGetGroup"] = "SCIM: get a group", ["scimListGroups"] = "SCIM: list groups",
        ["scimReplaceGroup"] = "SCIM: replace a group", ["scimPatchGroup"] = "SCIM: patch a group", ["scimDeleteGroup"] = "SCIM: delete a group",
    };

    /// <summary>Wolverine names an operation's description after its generated handler (GET_assignments_…): say what it does instead.</summary>
    private static Task HumanDescription(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        if (operation.OperationId is { } id && Titles.TryGetValue(id, out var title) && operation.Summary != title)
        {
            if (operation.Description is null || GeneratedName().IsMatch(operation.Description)) operation.Description = operation.Summary;
            operation.Summary = title;
            return Task.CompletedTask;
        }
        // Without a summary there is nothing to say: OpenApiDocumentTests then names the endpoint that needs [EndpointSummary].
        if (operation.Description is null || GeneratedName().IsMatch(operation.Description))
            operation.Description = operation.Summary;
        return Task.CompletedTask;
    }

    private static readonly Dictionary<string, string> Tags = new()
    {
        ["Assignments"] = "Assignments: audience X must complete content Y, by a due date or within a period, optionally recurring.",
        ["Enrolments"] = "One user in one assignment, with its event history; lists are paged with an opaque cursor.",
        ["Audiences"] = "Named sets of users; joining creates or reinstates enrolments, leaving archives them (in durable batches).",
        ["Content"] = "Training items named by assignments as primaryContentId.",
        ["Completions"] = "Records that a user completed a content item; idempotent on completionId.",
        ["Operations"] = "Progress of the fan-outs that audience and assignment changes start.",
        ["Mimecast"] = "Mimecast-compatible training details (Mimecast API 1.0 request signing, not Basic).",
        ["Webhooks"] = "Signed HTTP deliveries of the integration events to a subscriber's endpoint, retried for at least 24 hours.",
        ["Changes"] = "The tenant's enrolment changes in commit order, followed with a cursor.",
        ["Audit"] = "The tamper-evident export: every event with its hash chain, then the latest checkpoint.",
        ["Summaries"] = "Per assignment and per user: enrolments per status and completions on time, late and waived (eventually consistent).",
        ["Documents"] = "Machine-readable descriptions of the service (the AsyncAPI document of its messages).",
        ["Access tokens"] = "OAuth 2.0 client credentials: a tenant's secret exchanged for a bearer token that expires (docs/identity.md).",
        ["SCIM"] = "SCIM 2.0 (RFC 7643/7644) for identity providers: users and groups kept in sync; a group is an audience (docs/identity.md).",
        ["Thrive compatibility"] = "Thrive's paths and shapes under /rest/v1 (bare arrays, numbered pages, X-Total-Count and Link).",
    };

    private static async Task Describe(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken ct)
    {
        document.Info.Title = "Enrolment API";
        document.Info.Version = "1";
        document.Info.Description =
            "The system of record for who must complete which training, by when, and what happened along the way. " +
            "JSON, camelCase; instants are ISO-8601 UTC with milliseconds (`2023-08-23T09:09:16.076Z`); every error is an " +
            "RFC 9457 problem document (`application/problem+json`) with a `code` and a `traceId`.";
        document.Info.License = new OpenApiLicense { Name = "Proprietary", Url = new Uri("https://enrolment.example/license") };

        // The request's own address, as "http://host:port" with no trailing slash (paths start with one).
        foreach (var server in document.Servers ?? [])
            server.Url = server.Url?.TrimEnd('/');

        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes = SecurityRequirements.Schemes();

        var used = document.Paths.Values.SelectMany(p => p.Operations?.Values.AsEnumerable() ?? []).SelectMany(o => o.Tags ?? new HashSet<OpenApiTagReference>())
            .Select(t => t.Name).OfType<string>().ToHashSet();
        document.Tags = used.Order(StringComparer.Ordinal)
            .Select(name => new OpenApiTag { Name = name, Description = Tags.GetValueOrDefault(name) ?? name })
            .ToHashSet();
        await DropUnusedSchemas(document);
    }

    /// <summary>Schemas no answer refers to any more (Wolverine's "IResult" placeholder): a generated client would carry them for nothing.</summary>
    private static async Task DropUnusedSchemas(OpenApiDocument document)
    {
        if (document.Components?.Schemas is not { } schemas) return;
        while (true)
        {
            var json = await document.SerializeAsJsonAsync(OpenApiSpecVersion.OpenApi3_1);
            var unused = schemas.Keys.Where(name => !json.Contains($"\"#/components/schemas/{name}\"", StringComparison.Ordinal)).ToList();
            if (unused.Count == 0) return;
            foreach (var name in unused) schemas.Remove(name);
        }
    }
}
