using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Enrolment.Domain;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using NodaTime;

namespace Enrolment.Api.Infrastructure.OpenApi;

/// <summary>
/// The API's words and their formats (PRODUCT.md, "Words"), applied to every schema, property and parameter the
/// document generates: instants, ISO-8601 periods, the service's UUIDs, external ids and statuses. Request bodies
/// carry ids and instants as strings (the endpoint validates them and answers 422), so their format is known by
/// name, the same name everywhere in the API; routes added later get it without doing anything.
/// </summary>
internal sealed class ApiVocabulary : IOpenApiSchemaTransformer
{
    public const string ExternalIdPattern = "^[A-Za-z0-9._:@-]{1,64}$";
    public const string InstantExample = "2023-08-23T09:09:16.076Z";

    /// <summary>
    /// ISO-8601 periods as NodaTime reads them (years, months, weeks, days, then time). A pattern, not "format: duration":
    /// generators map that format to a fixed-length TimeSpan, which can hold neither P1M nor P1Y and is not sent as ISO.
    /// </summary>
    public const string PeriodPattern = @"^P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+([.,]\d+)?S)?)?$";

    /// <summary>External ids: the service does not own them (users, audiences, content, completions).</summary>
    private static readonly HashSet<string> ExternalIds = ["userId", "audienceId", "contentId", "primaryContentId", "completionId", "titleId"];

    /// <summary>Ids the service issues: UUIDs (a malformed one is a 422).</summary>
    private static readonly HashSet<string> ServiceIds = ["assignmentId", "enrolmentId", "operationId"];

    /// <summary>Names of instants sent as strings (bodies, query strings).</summary>
    private static readonly HashSet<string> InstantNames = ["availableDate", "dueDate", "completedAt", "asOf", "updatedAtFrom", "updatedAtTo"];

    private static readonly HashSet<string> PeriodNames = ["completionPeriod", "recurrence"];

    private static readonly string[] CurrentStatuses =
        Enum.GetValues<EnrolmentStatus>().Where(s => s != EnrolmentStatus.Unassigned).Select(EnrolmentRules.Lower).ToArray();
    private static readonly string[] AllStatuses = Enum.GetValues<EnrolmentStatus>().Select(EnrolmentRules.Lower).ToArray();

    public Task TransformAsync(OpenApiSchema schema, OpenApiSchemaTransformerContext context, CancellationToken cancellationToken)
    {
        var type = context.JsonTypeInfo.Type;
        var nullable = Nullable.GetUnderlyingType(type) is not null || schema.Type?.HasFlag(JsonSchemaType.Null) == true;
        type = Nullable.GetUnderlyingType(type) ?? type;

        if (type == typeof(Instant))
            AsString(schema, nullable, "date-time", "An instant, ISO-8601 UTC with milliseconds.", InstantExample);
        else if (type == typeof(Period))
        {
            AsString(schema, nullable, null, "An ISO-8601 period such as P30D, P1M, P1Y or PT30S.", "P30D");
            schema.Pattern = PeriodPattern;
        }
        else if (type == typeof(EnrolmentStatus))
        {
            // One component for every use: "unassigned" is only ever an eventLog entry's first previousStatus.
            schema.Enum = AllStatuses.Select(v => (JsonNode)JsonValue.Create(v)).ToList();
            schema.Type = nullable ? JsonSchemaType.String | JsonSchemaType.Null : JsonSchemaType.String;
            schema.Description ??= "An enrolment status; `unassigned` appears only as the previousStatus of an enrolment's first eventLog entry.";
        }
        else if (type.IsEnum && schema.Enum is { Count: > 0 } && schema.Type is null)
            schema.Type = nullable ? JsonSchemaType.String | JsonSchemaType.Null : JsonSchemaType.String; // JSON writes every enum as a string
        else
            CanonicalNumber(schema);

        var name = context.JsonPropertyInfo?.Name ?? context.ParameterDescription?.Name;
        if (name is not null && IsString(schema)) Describe(schema, name);
        if (name is "userIds" && schema.Items is OpenApiSchema items) Describe(items, "userId");
        if (context.ParameterDescription?.Name == "status")
            schema.Enum = CurrentStatuses.Select(v => (JsonNode)JsonValue.Create(v)).ToList();

        if (context.JsonTypeInfo.Kind == JsonTypeInfoKind.Object && schema.Properties is { Count: > 0 })
            Require(schema, context.JsonTypeInfo);
        return Task.CompletedTask;
    }

    private static void Describe(OpenApiSchema schema, string name)
    {
        if (ExternalIds.Contains(name)) { schema.Pattern = ExternalIdPattern; schema.MinLength = 1; schema.MaxLength = 64; }
        else if (ServiceIds.Contains(name)) schema.Format = "uuid";
        else if (InstantNames.Contains(name)) { schema.Format = "date-time"; Example(schema, InstantExample); }
        else if (PeriodNames.Contains(name)) { schema.Pattern = PeriodPattern; Example(schema, "P30D"); }
        else if (name == "timeZone") { schema.Description ??= "An IANA time zone; Etc/UTC when omitted."; Example(schema, "Europe/London"); }
    }

    /// <summary>
    /// Request bodies (types named …Request) require what their constructor requires, and a required field may not be
    /// null (the endpoint answers 422). Answers always carry every property the serializer always writes.
    /// </summary>
    private static void Require(OpenApiSchema schema, JsonTypeInfo typeInfo)
    {
        if (typeInfo.Type.Name.EndsWith("Request", StringComparison.Ordinal))
        {
            foreach (var required in schema.Required ?? new HashSet<string>())
                if (schema.Properties!.TryGetValue(required, out var p) && p is OpenApiSchema s && s.Type is { } t)
                    s.Type = t & ~JsonSchemaType.Null;
            return;
        }
        schema.Required = typeInfo.Properties.Where(p => p.Get is not null && !Conditional(p) && schema.Properties!.ContainsKey(p.Name))
            .Select(p => p.Name).ToHashSet();
        // A property left out when null (JsonIgnoreCondition.WhenWritingNull) is never null when present.
        foreach (var p in typeInfo.Properties.Where(Conditional))
            if (schema.Properties!.TryGetValue(p.Name, out var ps) && ps is OpenApiSchema optional && optional.Type is { } t)
                optional.Type = t & ~JsonSchemaType.Null;
    }

    private static void Example(OpenApiSchema schema, string example)
    {
        if (schema.Examples is not { Count: > 0 }) schema.Examples = [JsonValue.Create(example)];
    }

    private static bool Conditional(JsonPropertyInfo property) =>
        property.ShouldSerialize is not null
        || property.AttributeProvider?.GetCustomAttributes(typeof(JsonIgnoreAttribute), true).OfType<JsonIgnoreAttribute>()
            .Any(a => a.Condition != JsonIgnoreCondition.Never) == true;

    private static bool IsString(OpenApiSchema schema) => schema.Type?.HasFlag(JsonSchemaType.String) == true;

    private static void AsString(OpenApiSchema schema, bool nullable, string? format, string description, string example)
    {
        schema.Type = nullable ? JsonSchemaType.String | JsonSchemaType.Null : JsonSchemaType.String;
        schema.Format = format;
        schema.Description ??= description;
        schema.Examples = [JsonValue.Create(example)];
        schema.Properties?.Clear();
        schema.Required?.Clear();
        schema.AdditionalProperties = null;
        schema.Pattern = null;
    }

    /// <summary>
    /// The JSON options read numbers from strings too, so the generator writes "integer or string matching digits". A
    /// number is what clients should send and what the service answers with; documented as such.
    /// </summary>
    private static void CanonicalNumber(OpenApiSchema schema)
    {
        if (schema.Type is not { } t || !t.HasFlag(JsonSchemaType.String)) return;
        if (!t.HasFlag(JsonSchemaType.Integer) && !t.HasFlag(JsonSchemaType.Number)) return;
        schema.Type = t & ~JsonSchemaType.String;
        schema.Pattern = null;
    }
}
