using System.Text.Json;
using Enrolment.Api.Features.Mimecast;
using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Auth;
using Enrolment.Domain;
using JasperFx.CommandLine;
using Marten;
using NodaTime;

namespace Enrolment.Api.Features.Tenants;

public sealed class TenantsInput : NetCoreInput
{
    [Description("add | add-secret | list | move | revoke-secret | mimecast-key | revoke-mimecast-key")]
    public string Action { get; set; } = "";

    [Description("The Tenant ID, for example eu-west-2_AbcdEfghI")]
    public string TenantId { get; set; } = "";

    [Description("The id of the secret to revoke, or the Mimecast access key to revoke, as `tenants list` shows it")]
    public string SecretId { get; set; } = "";

    [Description("Comma-separated scopes of the new secret: api/all, api/read, api/write, api/webhooks, api/scim (default api/all)")]
    [FlagAlias("scopes")]
    public string ScopesFlag { get; set; } = Scopes.All;

    [Description("add: the shard to place the new tenant in (`shards list` names them); without it the pool's rule chooses the shard with the fewest tenants")]
    [FlagAlias("shard")]
    public string? ShardFlag { get; set; }

    [Description("move: the shard to move the tenant to (`shards list` names them)")]
    [FlagAlias("to")]
    public string? ToFlag { get; set; }
}

/// <summary>
/// Tenant administration from the command line: `./build/run.sh tenants add eu-west-2_AbcdEfghI`. A new secret
/// is printed alone on the last line of stdout and never again: only its hash is stored. `tenants mimecast-key <id>`
/// issues a Mimecast API 1.0 key set, printed once as one JSON object on the last line of stdout; its secret key is
/// stored encrypted (Mimecast:KeyEncryptionKey), because verifying a signature needs it.
/// </summary>
[Description("Create tenants and issue, list or revoke their API secrets and Mimecast keys", Name = "tenants")]
public sealed class TenantsCommand : JasperFxAsyncCommand<TenantsInput>
{
    public TenantsCommand()
    {
        Usage("Create a tenant with a first secret, issue another secret, or issue a Mimecast key set").Arguments(x => x.Action, x => x.TenantId);
        Usage("List tenants and their secrets (ids and scopes only)").Arguments(x => x.Action);
        Usage("Move a tenant to another shard: copy, verify its audit chain on both sides, switch, remove the old rows (--to <shard>)").Arguments(x => x.Action, x => x.TenantId);
        Usage("Revoke a secret, or a Mimecast key by its access key").Arguments(x => x.Action, x => x.TenantId, x => x.SecretId);
    }

    public override async Task<bool> Execute(TenantsInput input)
    {
        using var host = input.BuildHost();
        var store = host.Services.GetRequiredService<IDocumentStore>();
        var clock = host.Services.GetRequiredService<IClock>();
        await store.Storage.ApplyAllConfiguredChangesToDatabaseAsync();
        // Accounts, secrets and Mimecast keys are registry documents: they live in the home shard (TenantPool).
        await using var session = await store.OpenHome();

        switch (input.Action)
        {
            case "add":
            case "add-secret":
            {
                if (!Ids.IsValidTenantId(input.TenantId))
                    return Fail($"'{input.TenantId}' is not a valid Tenant ID: it must look like eu-west-2_AbcdEfghI.");
                var scopes = input.ScopesFlag.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct().ToArray();
                if (scopes.Length == 0 || scopes.Any(s => !Scopes.Known.Contains(s)))
                    return Fail($"--scopes must be a comma-separated list of {string.Join(", ", Scopes.Known)}.");
                var account = await session.LoadAsync<TenantAccount>(input.TenantId);
                if (input.Action == "add" && account is not null)
                    return Fail($"Tenant {input.TenantId} already exists. Use `tenants add-secret {input.TenantId}` to issue another secret.");
                if (input.Action == "add-secret" && account is null)
                    return Fail($"Tenant {input.TenantId} does not exist. Create it with `tenants add {input.TenantId}`.");
                if (input.ShardFlag is not null && input.Action != "add")
                    return Fail("--shard only applies to `tenants add`: a tenant's shard is chosen once, when it is created.");
                // Placed first, then the account: a run that dies in between leaves a placed tenant without an account,
                // which nobody can authenticate as, and running `tenants add` again finishes it in the same shard.
                string shard;
                try
                {
                    shard = account is null ? await store.PlaceTenant(input.TenantId, input.ShardFlag) : (await store.ShardOf(input.TenantId) ?? "none");
                }
                catch (InvalidOperationException e)
                {
                    return Fail(e.Message);
                }
                account ??= new TenantAccount { Id = input.TenantId, CreatedAt = clock.GetCurrentInstant() };
                var secret = Secrets.Generate();
                var record = new ApiSecret { SecretId = Secrets.NewSecretId(), Hash = Secrets.Hash(secret), Scopes = scopes, CreatedAt = clock.GetCurrentInstant() };
                account.Secrets.Add(record);
                session.Store(account);
                await session.SaveChangesAsync();
                await Console.Error.WriteLineAsync($"Tenant {account.Id} (shard {shard}): issued secret {record.SecretId} with scopes {string.Join(",", scopes)}. Store it now; it cannot be shown again.");
                Console.Out.WriteLine(secret);
                return true;
            }
            case "move":
            {
                if (string.IsNullOrEmpty(input.ToFlag))
                {
                    await Console.Error.WriteLineAsync("tenants move needs the target shard: `tenants move <tenantId> --to <shard>` (`shards list` names them).");
                    return false;
                }
                if (await session.LoadAsync<TenantAccount>(input.TenantId) is null)
                {
                    await Console.Error.WriteLineAsync($"Tenant {input.TenantId} does not exist. `tenants list` shows the tenants.");
                    return false;
                }
                try
                {
                    var report = await host.Services.GetRequiredService<TenantMove>().Run(input.TenantId, input.ToFlag,
                        line => Console.Error.WriteLine(line), CancellationToken.None);
                    Console.Out.WriteLine($"Tenant {input.TenantId} moved from shard {report.From} to shard {report.To} (move {report.Epoch}): {report.Events} events, {report.Streams} streams, {report.Documents} documents, {report.Deliveries} webhook deliveries; its audit chain verified on both sides. Its writes were refused (503) for {report.Fenced.TotalSeconds:F1} s; the move took {report.Total.TotalSeconds:F1} s.");
                    return true;
                }
                catch (MoveRefused e)
                {
                    await Console.Error.WriteLineAsync(e.Message);
                    return false;
                }
            }
            case "list":
            {
                var accounts = await session.Query<TenantAccount>().OrderBy(a => a.Id).ToListAsync();
                foreach (var a in accounts)
                {
                    Console.Out.WriteLine($"{a.Id}\tshard {await store.ShardOf(a.Id) ?? "none (run `tenants add` again to place it)"}\tcreated {a.CreatedAt}");
                    foreach (var s in a.Secrets)
                        Console.Out.WriteLine($"  secret {s.SecretId}\t{string.Join(",", s.Scopes)}\tcreated {s.CreatedAt}\t{(s.RevokedAt is { } r ? $"revoked {r}" : "active")}");
                    foreach (var k in await MimecastKeys.ForTenant(session, a.Id))
                        Console.Out.WriteLine($"  mimecast-key {k.Id}\tapp {k.AppId}\tcreated {k.CreatedAt}\t{(k.RevokedAt is { } r ? $"revoked {r}" : "active")}");
                }
                if (accounts.Count == 0) Console.Out.WriteLine("No tenants yet. Create one with `tenants add <tenantId>`.");
                return true;
            }
            case "revoke-secret":
            {
                var account = await session.LoadAsync<TenantAccount>(input.TenantId);
                var secret = account?.Secrets.FirstOrDefault(s => s.SecretId == input.SecretId);
                if (account is null || secret is null)
                    return Fail($"Tenant {input.TenantId} has no secret {input.SecretId}. `tenants list` shows the ids.");
                secret.RevokedAt ??= clock.GetCurrentInstant();
                session.Store(account);
                await session.SaveChangesAsync();
                Console.Out.WriteLine($"Revoked secret {secret.SecretId} of tenant {account.Id}. Running services stop accepting it within Auth:CacheSeconds.");
                return true;
            }
            case "mimecast-key":
            {
                if (await session.LoadAsync<TenantAccount>(input.TenantId) is null)
                    return Fail($"Tenant {input.TenantId} does not exist. Create it with `tenants add {input.TenantId}`.");
                var cipher = host.Services.GetRequiredService<MimecastSecretCipher>();
                var issued = MimecastKeys.Issue(session, cipher, input.TenantId, clock.GetCurrentInstant());
                await session.SaveChangesAsync();
                await Console.Error.WriteLineAsync($"Tenant {input.TenantId}: issued Mimecast access key {issued.AccessKey} (app id {issued.AppId}). Store the secret key now; it is never shown again.");
                Console.Out.WriteLine(JsonSerializer.Serialize(issued, JsonSerializerOptions.Web));
                return true;
            }
            case "revoke-mimecast-key":
            {
                if (!await MimecastKeys.Revoke(session, input.TenantId, input.SecretId, clock.GetCurrentInstant()))
                    return Fail($"Tenant {input.TenantId} has no Mimecast access key {input.SecretId}. `tenants list` shows them.");
                await session.SaveChangesAsync();
                Console.Out.WriteLine($"Revoked Mimecast access key {input.SecretId} of tenant {input.TenantId}. Requests signed with it are refused from now on.");
                return true;
            }
            default:
                return Fail($"Unknown action '{input.Action}'. Use add, add-secret, list, revoke-secret, mimecast-key or revoke-mimecast-key.");
        }
    }

    private static bool Fail(string message)
    {
        Console.Error.WriteLine(message);
        return false;
    }
}
