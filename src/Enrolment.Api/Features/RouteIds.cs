using Enrolment.Api.Infrastructure;
using Enrolment.Domain;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Enrolment.Api.Features;

/// <summary>Parses the ids in routes: a malformed id is a 422, never a 404 or a 500.</summary>
public static class RouteIds
{
    public static bool TryGuid(string value, string name, out Guid id, out ProblemHttpResult? problem)
    {
        problem = null;
        if (value.Length <= 64 && Guid.TryParse(value, out id)) return true;
        id = Guid.Empty;
        problem = Problems.Validation(name, $"'{name}' must be an id issued by this service (a UUID such as 0191f2a4-6c3b-7e21-9a4e-1f2b3c4d5e6f).");
        return false;
    }

    public static bool TryExternal(string value, string name, out ProblemHttpResult? problem)
    {
        problem = Ids.IsValidExternalId(value) ? null : Problems.Validation(name, $"'{name}' must be 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -");
        return problem is null;
    }
}
