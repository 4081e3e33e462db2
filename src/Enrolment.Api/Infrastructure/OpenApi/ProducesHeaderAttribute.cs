namespace Enrolment.Api.Infrastructure.OpenApi;

/// <summary>
/// A header an endpoint always sends with one of its statuses, for the OpenAPI document (ASP.NET Core's metadata has no
/// place for response headers). <see cref="StandardResponses"/> writes it into that status's answer, as required.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class ProducesHeaderAttribute(int statusCode, string name, string description) : Attribute
{
    public int StatusCode { get; } = statusCode;
    public string Name { get; } = name;
    public string Description { get; } = description;

    /// <summary>An integer header (a count); otherwise a string.</summary>
    public bool Integer { get; init; }
}
