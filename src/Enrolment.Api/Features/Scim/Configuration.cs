using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.AspNetCore.OpenApi;

namespace Enrolment.Api.Features.Scim;

/// <summary>
/// SCIM 2.0 under /scim/v2 (docs/identity.md): users and groups an identity provider keeps in sync. Groups are audiences;
/// their membership changes go through the audiences' own membership change. Documents: the users, the groups' names,
/// and the memberships of deactivated users.
/// </summary>
public static class ScimConfiguration
{
    public static void AddScim(this WebApplicationBuilder builder)
    {
        builder.Services.ConfigureMarten(opts =>
        {
            opts.Schema.For<ScimUser>().Index(x => x.UserNameKey).Index(x => x.ExternalId!);
            opts.Schema.For<ScimGroup>().Index(x => x.DisplayNameKey);
            opts.Schema.For<SuspendedMembership>().Index(x => x.UserId).Index(x => x.AudienceId);
        });
        builder.Services.AddAuthorizationBuilder()
            .AddPolicy(AuthPolicies.Scim, p => p.RequireAuthenticatedUser()
                .RequireAssertion(c => Scopes.Grants(c.User.FindAll(BasicAuthenticationHandler.ScopeClaim).Select(x => x.Value), Scopes.Scim)));
        builder.Services.Configure<OpenApiOptions>(Infrastructure.OpenApi.OpenApiSetup.DocumentName, o =>
        {
            o.AddSchemaTransformer((schema, context, _) => { ScimOpenApi.Schema(schema, context); return Task.CompletedTask; });
            o.AddOperationTransformer(ScimOpenApi.Operation);
        });
    }
}
