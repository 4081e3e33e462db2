using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using NodaTime;

namespace Enrolment.Api.Tests;

/// <summary>Tenants made straight in the store (the CLI that makes them is tested in CliTests), and their Basic headers.</summary>
public static class TestTenants
{
    /// <summary>Creates the tenant with one secret per scope given and returns the secrets, in that order.</summary>
    public static async Task<string[]> Create(IServiceProvider services, string tenantId, params string[] scopes)
    {
        var now = SystemClock.Instance.GetCurrentInstant();
        var secrets = scopes.Select(_ => Secrets.Generate()).ToArray();
        var account = new TenantAccount { Id = tenantId, CreatedAt = now };
        for (var i = 0; i < scopes.Length; i++)
            account.Secrets.Add(new ApiSecret { SecretId = Secrets.NewSecretId(), Hash = Secrets.Hash(secrets[i]), Scopes = [scopes[i]], CreatedAt = now });
        var store = services.GetRequiredService<IDocumentStore>();
        // As `tenants add` does: placed in the pool (its partitions in its shard), then its account in the home shard.
        await store.PlaceTenant(tenantId, shard: null);
        await using var session = await store.OpenHome();
        session.Store(account);
        await session.SaveChangesAsync();
        return secrets;
    }

    /// <summary>Creates the tenant with one api/all secret and returns its Basic header.</summary>
    public static async Task<string> CreateWithAllScopes(IServiceProvider services, string tenantId) =>
        Basic(tenantId, (await Create(services, tenantId, Scopes.All))[0]);

    public static string Basic(string tenantId, string secret) =>
        "Basic " + Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{tenantId}:{secret}"));
}
