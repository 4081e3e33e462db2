using Enrolment.Api.Infrastructure;
using System.Net;
using System.Text;
using Enrolment.Api.Infrastructure.Auth;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using NodaTime;

namespace Enrolment.Api.Tests;

/// <summary>
/// PRODUCT.md's authentication table, line by line. Every request that fails authentication comes from its own
/// random client address: the service counts failures per address, so tests must not add up against each other.
/// </summary>
public sealed class AuthTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private const string ReadRoute = "/users/u1/enrolments";
    private const string WriteRoute = "/content/c1";
    private readonly IPAddress client = IPAddress.Parse(Scenarios.RandomIp());

    private Task<ApiResponse> Read(string? authorization, IPAddress? ip = null) =>
        Host.Send(HttpMethod.Get, ReadRoute, authorization, clientIp: ip ?? client);

    private Task<ApiResponse> Write(string? authorization, IPAddress? ip = null) =>
        Host.Send(HttpMethod.Put, WriteRoute, authorization, Scenarios.ToJson(new { title = "t" }), ip ?? client);

    private static string Base64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    private static void AssertUnauthenticated(ApiResponse response)
    {
        response.AssertProblem(401);
        var challenge = response.Headers.WWWAuthenticate.ToString();
        Assert.True(challenge.StartsWith("Basic", StringComparison.OrdinalIgnoreCase), $"WWW-Authenticate must offer Basic, got '{challenge}'");
    }

    [Fact]
    public async Task Valid_credentials_with_the_needed_scope_are_accepted()
    {
        (await Read(Basic(TenantId, ReadSecret))).AssertStatus(200);
        (await Write(Basic(TenantId, WriteSecret))).AssertStatus(200);
        (await Read(Basic(TenantId, AllSecret))).AssertStatus(200);
        (await Write(Basic(TenantId, AllSecret))).AssertStatus(200);
    }

    [Fact]
    public async Task No_credentials_is_401_with_a_Basic_challenge() =>
        AssertUnauthenticated(await Read(null));

    [Fact]
    public async Task A_scheme_other_than_Basic_is_401() =>
        AssertUnauthenticated(await Read("Bearer " + Base64($"{TenantId}:{AllSecret}")));

    [Fact]
    public async Task Garbled_base64_is_401() =>
        AssertUnauthenticated(await Read("Basic !!not*base64%%"));

    [Fact]
    public async Task Credentials_without_a_colon_are_401() =>
        AssertUnauthenticated(await Read("Basic " + Base64(TenantId + AllSecret)));

    [Fact]
    public async Task A_malformed_tenant_id_is_401() =>
        AssertUnauthenticated(await Read(Basic("not a tenant", AllSecret)));

    [Fact]
    public async Task An_unknown_tenant_is_401() =>
        AssertUnauthenticated(await Read(Basic("eu-west-1_NoSuchTenant9", AllSecret)));

    [Fact]
    public async Task A_wrong_secret_is_401() =>
        AssertUnauthenticated(await Read(Basic(TenantId, Secrets.Generate())));

    [Fact]
    public async Task Another_tenants_secret_is_401()
    {
        var (otherAll, _, _) = await CreateTenant("eu-west-1_OtherTenant2");
        AssertUnauthenticated(await Read(Basic(TenantId, otherAll)));
    }

    [Fact]
    public async Task A_revoked_secret_is_401_while_the_tenants_other_secrets_still_work()
    {
        // Two fresh secrets, never used (so never cached): one is revoked before its first use.
        string kept = Secrets.Generate(), revoked = Secrets.Generate();
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        var now = SystemClock.Instance.GetCurrentInstant();
        await using (var session = await store.OpenHome())
        {
            var account = (await session.LoadAsync<TenantAccount>(TenantId))!;
            account.Secrets.Add(new ApiSecret { SecretId = Secrets.NewSecretId(), Hash = Secrets.Hash(kept), Scopes = [Scopes.All], CreatedAt = now });
            account.Secrets.Add(new ApiSecret { SecretId = Secrets.NewSecretId(), Hash = Secrets.Hash(revoked), Scopes = [Scopes.All], CreatedAt = now });
            session.Store(account);
            await session.SaveChangesAsync();
        }
        await using (var session = await store.OpenHome())
        {
            var account = (await session.LoadAsync<TenantAccount>(TenantId))!;
            account.Secrets.Single(s => s.Hash.SequenceEqual(Secrets.Hash(revoked))).RevokedAt = now;
            session.Store(account);
            await session.SaveChangesAsync();
        }

        AssertUnauthenticated(await Read(Basic(TenantId, revoked)));
        (await Read(Basic(TenantId, kept))).AssertStatus(200);
    }

    [Fact]
    public async Task A_read_only_secret_on_a_write_route_is_403()
    {
        (await Write(Basic(TenantId, ReadSecret))).AssertProblem(403);
        (await Post("/completions", new { completionId = "x1", userId = "u1", contentId = "c1", completedAt = Now() }, Basic(TenantId, ReadSecret))).AssertProblem(403);
        (await Post("/assignments", new { audienceId = "a1", primaryContentId = "c1", completionPeriod = "P30D" }, Basic(TenantId, ReadSecret))).AssertProblem(403);
        (await Put("/audiences/a1/members", new { userIds = new[] { "u1" } }, Basic(TenantId, ReadSecret))).AssertProblem(403);
    }

    [Fact]
    public async Task A_write_only_secret_on_a_read_route_is_403()
    {
        (await Read(Basic(TenantId, WriteSecret))).AssertProblem(403);
        (await Get($"/assignments/{Guid.NewGuid()}", Basic(TenantId, WriteSecret))).AssertProblem(403);
        (await Get($"/assignments/{Guid.NewGuid()}/enrolments", Basic(TenantId, WriteSecret))).AssertProblem(403);
    }

    [Fact]
    public async Task Repeated_failures_from_one_client_get_429_even_with_a_correct_secret_but_other_clients_are_not_locked_out()
    {
        var wrong = Basic(TenantId, Secrets.Generate());
        for (var i = 0; i < 10; i++)
            AssertUnauthenticated(await Read(wrong));
        for (var i = 0; i < 2; i++)
            (await Read(wrong)).AssertProblem(429);

        var locked = await Read(Basic(TenantId, AllSecret));
        locked.AssertProblem(429);
        var retryAfter = locked.Headers.RetryAfter.ToString();
        Assert.True(int.TryParse(retryAfter, out var seconds) && seconds is >= 1 and <= 60, $"Retry-After must be 1–60 seconds, got '{retryAfter}'");

        // The same tenant and secret from another client: not locked out by a stranger's failures.
        (await Read(Basic(TenantId, AllSecret), IPAddress.Parse(Scenarios.RandomIp()))).AssertStatus(200);
    }

    [Fact]
    public async Task Another_tenant_cannot_read_list_complete_remind_or_archive_this_tenants_enrolments_or_assignments()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var (otherAll, _, _) = await CreateTenant("eu-west-1_OtherTenant2");
        var other = Basic("eu-west-1_OtherTenant2", otherAll);

        (await Get($"/assignments/{assignmentId}", other)).AssertProblem(404);
        (await Get($"/assignments/{assignmentId}/enrolments", other)).AssertProblem(404);
        (await Get($"/assignments/{assignmentId}/enrolments/{enrolmentId}", other)).AssertProblem(404);
        (await Get($"/assignments/{assignmentId}/enrolments/{enrolmentId}/events", other)).AssertProblem(404);
        var users = (await Get("/users/u1/enrolments", other)).AssertStatus(200);
        Assert.Empty(users.Json["items"]!.AsArray());
        Assert.Null(users.Json["nextCursor"]);
        Assert.Empty((await Get("/audiences/a1/members", other)).AssertStatus(200).Json["userIds"]!.AsArray());

        var completion = (await Complete("other-1", "u1", "c1", auth: other)).AssertStatus(200);
        Assert.Empty(completion.Json["completed"]!.AsArray());
        (await Post($"/assignments/{assignmentId}/enrolments/{enrolmentId}/reminders", auth: other)).AssertProblem(404);
        (await Post($"/assignments/{assignmentId}/enrolments/{enrolmentId}/archive", auth: other)).AssertProblem(404);
        (await Delete($"/assignments/{assignmentId}", other)).AssertProblem(404);
        (await Delete($"/audiences/a1/members/u1", other)).AssertProblem(404);

        // Nothing of the other tenant's attempts reached this tenant's enrolment.
        var mine = await GetEnrolment(assignmentId, enrolmentId);
        Assert.Equal("open", mine.Str("status"));
        Assert.Single(mine["eventLog"]!.AsArray());
        Assert.Equal("active", (await Get($"/assignments/{assignmentId}")).AssertStatus(200).Json.Str("status"));
        Assert.Equal(2, (await ListAll($"/assignments/{assignmentId}/enrolments")).Count);
    }
}
