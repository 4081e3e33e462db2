using Alba;
using Marten;
using Marten.Events;
using Microsoft.Extensions.DependencyInjection;

namespace Enrolment.Api.Tests;

/// <summary>PRODUCT.md, "Where a compliance manager starts": GET /assignments, and CSV on the three lists.</summary>
public sealed class AssignmentListTests(AppFixture fixture) : ScenarioTest(fixture)
{
    /// <summary>The summaries come from the daemon: reset the store under it paused, as SummaryTests do, so it reads its progress again.</summary>
    public override async Task InitializeAsync()
    {
        var coordinator = Host.Services.GetRequiredService<JasperFx.Events.Daemon.IProjectionCoordinator>();
        await coordinator.PauseAsync();
        await base.InitializeAsync();
        await coordinator.ResumeAsync();
    }

    // The tenant's shard only: a shard with no events at all (the test database's second one) never reports activity.
    private Task CaughtUp() => Host.Services.GetRequiredService<IDocumentStore>().WaitForNonStaleProjectionDataAsync(TenantId, TimeSpan.FromSeconds(60));

    [Fact]
    public async Task The_list_of_assignments_is_newest_first_with_titles_and_summaries_filtered_and_paged()
    {
        await PutContent("sec-101", "Security basics 2027");
        await SetMembers("finance", ["u1", "u2", "u3"]);
        await SetMembers("sales", ["u4"]);
        var first = await CreateAssignment("finance", "sec-101");
        var second = await CreateAssignment("sales", "sec-101");
        var third = await CreateAssignment("finance", "gdpr-1");
        (await Delete($"/assignments/{second}")).AssertStatus(202);
        (await Complete("c-u1", "u1", "sec-101")).AssertStatus(200);
        await CaughtUp();

        var all = (await Get("/assignments")).AssertStatus(200).Json;
        Assert.Equal([third, second, first], all["items"]!.AsArray().Select(i => i.Str("id")).ToArray());
        Assert.Null(all["nextCursor"]);
        var sec = all["items"]!.AsArray().Single(i => i.Str("id") == first)!;
        Assert.Equal("Security basics 2027", sec.Str("title"));
        Assert.Equal("active", sec.Str("status"));
        Assert.Equal(3, sec["summary"]!["total"]!.GetValue<int>());
        Assert.Equal(1, sec["summary"]!["byStatus"]!["complete"]!.GetValue<int>());
        Assert.Equal(2, sec["summary"]!["byStatus"]!["open"]!.GetValue<int>());
        Assert.Null(all["items"]!.AsArray().Single(i => i.Str("id") == third)!["title"]?.GetValue<string>());

        string[] Ids(ApiResponse r) => r.AssertStatus(200).Json["items"]!.AsArray().Select(i => i.Str("id")).ToArray();
        Assert.Equal([second], Ids(await Get("/assignments?status=removed")));
        Assert.Equal([third, first], Ids(await Get("/assignments?status=active&audienceId=finance")));
        Assert.Equal([second, first], Ids(await Get("/assignments?contentId=sec-101")));

        // Paged: every assignment once, newest first, whatever the page size.
        var paged = (await ListAll("/assignments", limit: 1)).Select(i => i.Str("id")).ToArray();
        Assert.Equal([third, second, first], paged);

        (await Get("/assignments?status=archived")).AssertProblem(422);
        (await Get("/assignments?limit=0")).AssertProblem(422);
        (await Get("/assignments?cursor=not-a-cursor")).AssertProblem(422);
        (await Get("/assignments", Basic(TenantId, WriteSecret))).AssertProblem(403);

        // Another tenant sees none of them.
        var (other, _, _) = await CreateTenant("eu-west-2_OtherTenant7");
        Assert.Empty(Ids(await Get("/assignments", Basic("eu-west-2_OtherTenant7", other))));
    }

    [Fact]
    public async Task The_enrolment_lists_answer_csv_with_every_row_quoted_as_rfc_4180_and_late_and_waived_columns()
    {
        await PutContent("c1");
        var users = Enumerable.Range(0, 1_203).Select(i => $"u{i:0000}").ToArray();
        await SetMembers("a1", users);
        var assignmentId = await CreateAssignment(new { audienceId = "a1", primaryContentId = "c1", availableDate = Now(TimeSpan.FromDays(-10)), dueDate = Now(TimeSpan.FromDays(-1)) });
        (await Complete("late-1", "u0001", "c1")).AssertStatus(200);
        var waivedId = await EnrolmentIdFor(assignmentId, "u0002");
        (await Post($"/assignments/{assignmentId}/enrolments/{waivedId}/waive", new { reason = "holds the certificate" })).AssertStatus(200);

        var csv = await GetCsv($"/assignments/{assignmentId}/enrolments");
        var lines = csv.Split("\r\n");
        Assert.Equal("enrolmentId,userId,assignmentId,audienceId,primaryContentId,status,availableDate,dueDate,lastCompletedAt,late,waived,updatedAt", lines[0]);
        Assert.Equal("", lines[^1]); // every row ends with CRLF
        var rows = lines[1..^1].Select(l => l.Split(',')).ToList();
        Assert.Equal(users.Length, rows.Count);
        Assert.Equal(users, rows.Select(r => r[1]).Order(StringComparer.Ordinal).ToArray());
        var byUser = rows.ToDictionary(r => r[1]);
        Assert.Equal(("complete", "true", "false"), (byUser["u0001"][5], byUser["u0001"][9], byUser["u0001"][10]));
        Assert.Equal(("complete", "false", "true"), (byUser["u0002"][5], byUser["u0002"][9], byUser["u0002"][10]));
        Assert.Equal(("open", "false", "false", ""), (byUser["u0003"][5], byUser["u0003"][9], byUser["u0003"][10], byUser["u0003"][8]));
        Assert.All(rows, r => Assert.Matches(Scenarios.InstantFormat, r[11]));

        // The same filters as the JSON list.
        var complete = (await GetCsv($"/assignments/{assignmentId}/enrolments?status=complete")).Split("\r\n");
        Assert.Equal(2 + 2, complete.Length);
        var user = (await GetCsv("/users/u0001/enrolments")).Split("\r\n");
        Assert.Equal(3, user.Length);
        Assert.StartsWith(byUser["u0001"][0] + ",u0001,", user[1]);
        // Another tenant's CSV of the same routes holds the header and nothing else.
        var (other, _, _) = await CreateTenant("eu-west-2_OtherTenant8");
        foreach (var url in new[] { "/users/u0001/enrolments", "/assignments" })
        {
            var theirs = await Host.Scenario(s => { s.Get.Url(url); s.WithRequestHeader("Authorization", Basic("eu-west-2_OtherTenant8", other)); s.WithRequestHeader("Accept", "text/csv"); });
            Assert.Single((await theirs.ReadAsTextAsync()).Split("\r\n", StringSplitOptions.RemoveEmptyEntries));
        }
        // JSON stays the default, and wins when preferred.
        var json = await Host.Scenario(s => { s.Get.Url("/users/u0001/enrolments"); s.WithRequestHeader("Authorization", Auth); s.WithRequestHeader("Accept", "application/json, text/csv;q=0.5"); });
        Assert.StartsWith("application/json", json.Context.Response.ContentType);
    }

    [Fact]
    public async Task The_assignments_csv_quotes_titles_with_commas_and_quotes()
    {
        await PutContent("c1", "Security, \"advanced\"");
        await SetMembers("a1", ["u1"]);
        var id = await CreateAssignment("a1", "c1");
        var lines = (await GetCsv("/assignments")).Split("\r\n");
        Assert.StartsWith("assignmentId,audienceId,primaryContentId,title,status,", lines[0]);
        Assert.StartsWith($"{id},a1,c1,\"Security, \"\"advanced\"\"\",active,", lines[1]);
        Assert.Equal(3, lines.Length);
    }

    private async Task<string> GetCsv(string url)
    {
        var result = await Host.Scenario(s =>
        {
            s.Get.Url(url);
            s.WithRequestHeader("Authorization", Auth);
            s.WithRequestHeader("Accept", "text/csv");
        });
        Assert.StartsWith("text/csv", result.Context.Response.ContentType);
        return await result.ReadAsTextAsync();
    }
}
