namespace Enrolment.Api.Features.Thrive;

/// <summary>The Thrive-compatible surface (PRODUCT.md, "Thrive compatibility"): Thrive's paths under /rest/v1 over our use cases.</summary>
public static class ThriveApi
{
    public const string Tag = "Thrive compatibility";
}
