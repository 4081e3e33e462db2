using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Enrolment.Api.Features.Mimecast;

/// <summary>
/// How the OpenAPI document shows the Mimecast route: its security scheme (MC request signing) and the three signed
/// headers every request carries. The API's own security (Basic, Bearer) is Infrastructure/OpenApi/SecurityRequirements.
/// </summary>
public static class MimecastOpenApi
{
    public const string Scheme = "mimecast";

    private static readonly (string Name, string Description, string Example)[] Headers =
    [
        ("x-mc-date", "The request's date, RFC 1123, within ±15 minutes of the service clock; part of the signed text.", "Tue, 24 Nov 2015 12:50:11 UTC"),
        ("x-mc-req-id", "A unique id for this request (a fresh GUID); a repeated id is refused. Part of the signed text.", "8f6e2a5c-3b1d-4c9e-9a7f-2d4b6e8f0a1c"),
        ("x-mc-app-id", "The application id issued with the access key.", "enrolment-app"),
    ];

    public static void Configure(OpenApiOptions options)
    {
        options.AddOperationTransformer(Operation);
        options.AddDocumentTransformer((document, _, _) =>
        {
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes[Scheme] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey,
                In = ParameterLocation.Header,
                Name = "Authorization",
                Description = "Mimecast API 1.0 request signing: `Authorization: MC {accessKey}:{signature}`, where signature = " +
                              "Base64(HMAC-SHA1(Base64Decode(secretKey), \"{x-mc-date}:{x-mc-req-id}:{path}:{appKey}\")), with the `x-mc-date`, " +
                              "`x-mc-req-id` and `x-mc-app-id` headers. Keys: `./build/run.sh tenants mimecast-key <tenantId>`; see docs/mimecast.md.",
            };
            return Task.CompletedTask;
        });
    }

    private static Task Operation(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken ct)
    {
        if (context.Description.RelativePath?.TrimStart('/') != GetTrainingDetails.Route.TrimStart('/')) return Task.CompletedTask;
        operation.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(Scheme, context.Document!)] = [] }];
        operation.Parameters ??= [];
        foreach (var (name, description, example) in Headers)
            if (!operation.Parameters.Any(p => p.Name == name && p.In == ParameterLocation.Header))
                operation.Parameters.Add(new OpenApiParameter
                {
                    Name = name, In = ParameterLocation.Header, Required = true, Description = description,
                    Schema = new OpenApiSchema { Type = JsonSchemaType.String }, Example = example,
                });
        return Task.CompletedTask;
    }
}
