using Enrolment.Api.Infrastructure.Auth;
using static Enrolment.Api.Tests.Identity;

namespace Enrolment.Api.Tests;

/// <summary>
/// A group PATCH that adds a user, racing that user's deactivation (and reactivation). Whatever the order, a deactivated
/// user must not count as a member of the audience (nor stay enrolled), and stays a SCIM member of the group, so that
/// reactivation enrols them. Serialized by the SCIM user's lock (kind scim-user), which both take before the audience lock.
/// </summary>
public sealed class ScimRaceTests(AppFixture fixture) : ScenarioTest(fixture)
{
    private const int Users = 16;

    [Fact]
    public async Task A_group_patch_adding_a_user_and_that_users_deactivation_at_the_same_time_never_leave_an_inactive_member()
    {
        var (secret, _) = await AddSecret(Host.Services, TenantId, Scopes.Scim);
        var bearer = "Bearer " + secret;
        Task<ApiResponse> Scim(string method, string path, string? body = null) => Host.Call(method, "/scim/v2" + path, bearer, body);

        await PutContent("race-c1");
        var users = Enumerable.Range(0, Users).Select(i => $"race-u{i:00}").ToArray();
        foreach (var u in users)
            (await Scim("POST", "/Users", $$"""{"userName":"{{u}}@example.com","externalId":"{{u}}"}""")).AssertStatus(201);
        var groupId = (await Scim("POST", "/Groups", """{"displayName":"Race"}""")).AssertStatus(201).Json.Str("id");
        var assignment = await CreateAssignment(groupId, "race-c1");

        // Each user: a PATCH adding them to the group and a PATCH deactivating them, sent together; every pair at once.
        var requests = users.SelectMany(u => new Func<Task<ApiResponse>>[]
        {
            () => Scim("PATCH", $"/Groups/{groupId}", $$"""{"Operations":[{"op":"add","path":"members","value":[{"value":"{{u}}"}]}]}"""),
            () => Scim("PATCH", $"/Users/{u}", """{"Operations":[{"op":"replace","value":{"active":false}}]}"""),
        }).OrderBy(_ => Random.Shared.Next()).ToArray();
        var answers = await Task.WhenAll(requests.Select(r => Task.Run(r)));
        Assert.All(answers, a => Assert.True(a.Status is 200 or 204, $"every request succeeds: {a}"));

        // Nobody inactive counts as a member; every one is a SCIM member of the group.
        var audience = (await Get($"/audiences/{groupId}/members")).AssertStatus(200).Json["userIds"]!.AsArray().Select(x => x!.GetValue<string>()).ToArray();
        Assert.Empty(audience);
        var scimMembers = (await Scim("GET", $"/Groups/{groupId}")).Json["members"]!.AsArray().Select(m => m!.Str("value")).Order().ToArray();
        Assert.Equal(users, scimMembers);
        // Whatever the fan-out did meanwhile, nobody is left enrolled and active.
        await Eventually(async () =>
        {
            var items = (await Get($"/assignments/{assignment}/enrolments?limit=500")).Json["items"]!.AsArray();
            var active = items.Where(i => i!.Str("status") != "archived").Select(i => i!.Str("userId")).ToArray();
            return (active.Length == 0, string.Join(", ", active));
        }, "no inactive user keeps an active enrolment");

        // Reactivation, racing a second add of the same users: all of them members and enrolled.
        var again = users.SelectMany(u => new Func<Task<ApiResponse>>[]
        {
            () => Scim("PATCH", $"/Groups/{groupId}", $$"""{"Operations":[{"op":"Add","path":"members","value":[{"value":"{{u}}"}]}]}"""),
            () => Scim("PATCH", $"/Users/{u}", """{"Operations":[{"op":"Replace","path":"active","value":true}]}"""),
        }).OrderBy(_ => Random.Shared.Next()).ToArray();
        Assert.All(await Task.WhenAll(again.Select(r => Task.Run(r))), a => Assert.True(a.Status is 200 or 204, $"every request succeeds: {a}"));
        var members = (await Get($"/audiences/{groupId}/members")).Json["userIds"]!.AsArray().Select(x => x!.GetValue<string>()).Order().ToArray();
        Assert.Equal(users, members);
        await Eventually(async () =>
        {
            var items = (await Get($"/assignments/{assignment}/enrolments?limit=500")).Json["items"]!.AsArray();
            var open = items.Count(i => i!.Str("status") == "open");
            return (open == Users, $"{open} open of {items.Count}");
        }, "every reactivated member is enrolled again");
    }
}
