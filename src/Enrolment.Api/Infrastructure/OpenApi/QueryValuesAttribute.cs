using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Enrolment.Api.Infrastructure.OpenApi;

/// <summary>
/// A query parameter taken as a string (so a wrong value is the endpoint's own 422 with its message) whose values are
/// an enum's, as JSON writes them: the document lists them. Without it a query parameter named <c>status</c> is
/// documented with the enrolment statuses (<see cref="ApiVocabulary"/>).
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class QueryValuesAttribute(string name, Type enumType) : Attribute
{
    public string Name { get; } = name;
    public Type EnumType { get; } = enumType;

    public IEnumerable<string> Values() => Enum.GetValues(EnumType).Cast<Enum>().Select(Json.Name);

    internal static Task Transform(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        foreach (var values in context.Description.ActionDescriptor.EndpointMetadata.OfType<QueryValuesAttribute>())
            if (operation.Parameters?.FirstOrDefault(p => p.Name == values.Name && p.In == ParameterLocation.Query) is OpenApiParameter { Schema: OpenApiSchema schema })
                schema.Enum = values.Values().Select(v => (JsonNode)JsonValue.Create(v)).ToList();
        return Task.CompletedTask;
    }
}
