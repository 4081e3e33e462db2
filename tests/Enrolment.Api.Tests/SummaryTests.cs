using Enrolment.Api.Infrastructure;
using System.Text.Json.Nodes;
using Enrolment.Api.Features.Time;
using Marten;
using Marten.Events;
using Microsoft.Extensions.DependencyInjection;
using Wolverine;

namespace Enrolment.Api.Tests;

/// <summary>PRODUCT.md "Compliance", summaries: the async projection agrees with the enrolment lists once caught up.</summary>
public sealed class SummaryTests(AppFixture fixture) : ScenarioTest(fixture)
{
    /// <summary>
    /// Every test starts by resetting the store (events and projection progress included) under the running daemon:
    /// pause and resume it, so that it reads its progress again rather than going on from where it was.
    /// </summary>
    public override async Task InitializeAsync()
    {
        var coordinator = Host.Services.GetRequiredService<JasperFx.Events.Daemon.IProjectionCoordinator>();
        await coordinator.PauseAsync();
        await base.InitializeAsync();
        await coordinator.ResumeAsync();
    }

    // The tenant's shard only: a shard another test added while this host runs has no daemon here (Marten's Solo daemon
    // starts for the databases known at start), and waiting on every shard would wait on it.
    private Task CaughtUp() => Host.Services.GetRequiredService<IDocumentStore>().WaitForNonStaleProjectionDataAsync(TenantId, TimeSpan.FromSeconds(60));

    private async Task<int> ApplyTime(string enrolmentId)
    {
        await using var scope = Host.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<IMessageBus>().InvokeForTenantAsync<int>(TenantId, new ApplyDueTransitions([Guid.Parse(enrolmentId)]));
    }

    /// <summary>What the summary must say, from the enrolment list and (for on time / late / waived) each complete enrolment's stream.</summary>
    private async Task AssertSummaryMatches(string summaryUrl, string listUrl, string assignmentIdOf = "assignmentId")
    {
        var summary = (await Get(summaryUrl)).AssertStatus(200).Json;
        var items = await ListAll(listUrl);
        var byStatus = summary["byStatus"]!;
        foreach (var status in new[] { "scheduled", "open", "overdue", "complete", "archived" })
            Assert.True(items.Count(i => i.Str("status") == status) == byStatus[status]!.GetValue<int>(), $"{status} in {summaryUrl}: {summary.ToJsonString()}");
        Assert.Equal(items.Count, summary["total"]!.GetValue<int>());

        int onTime = 0, late = 0, waived = 0;
        foreach (var item in items.Where(i => i.Str("status") == "complete"))
        {
            var events = await Events(item.Str(assignmentIdOf), item.Str("id"));
            var last = events.Last(e => e.Str("eventType") is "enrolment.completed" or "enrolment.waived")!;
            if (last.Str("eventType") == "enrolment.waived") waived++;
            else if (last["data"]!["late"]!.GetValue<bool>()) late++;
            else onTime++;
        }
        Assert.Equal((onTime, late, waived), (summary["completedOnTime"]!.GetValue<int>(), summary["completedLate"]!.GetValue<int>(), summary["waived"]!.GetValue<int>()));
        Assert.Matches(Scenarios.InstantFormat, summary.Str("asOf"));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task After_random_writes_each_summary_equals_what_the_enrolment_lists_say(int seed)
    {
        var random = new Random(seed);
        await PutContent("c1");
        var users = Enumerable.Range(1, 8).Select(i => $"u{i}").ToArray();
        await SetMembers("a1", users);
        var open = await CreateAssignment("a1", "c1");
        var late = await CreateAssignment(new { audienceId = "a1", primaryContentId = "c1", availableDate = Now(TimeSpan.FromDays(-10)), dueDate = Now(TimeSpan.FromDays(-1)) });
        var assignments = new[] { open, late };
        var enrolments = new List<(string Assignment, string Id, string User)>();
        foreach (var a in assignments)
        foreach (var u in users)
            enrolments.Add((a, await EnrolmentIdFor(a, u), u));

        for (var step = 0; step < 40; step++)
        {
            var (a, e, u) = enrolments[random.Next(enrolments.Count)];
            var url = $"/assignments/{a}/enrolments/{e}";
            switch (random.Next(7))
            {
                case 0: await ApplyTime(e); break;
                case 1: await Post($"{url}/waive", new { reason = "exempt" }); break;
                case 2: await Post($"{url}/extend", new { dueDate = Now(TimeSpan.FromDays(40 + step)), reason = "leave" }); break;
                case 3: await Complete($"done-{step}", u, "c1"); break;
                case 4: await Post($"{url}/archive"); break;
                case 5: await Post($"{url}/reminders"); break;
                case 6:
                    var left = await Delete($"/audiences/a1/members/{u}");
                    if (left.Status == 202) await WaitForOperation(left); else await AddMembers("a1", [u]);
                    break;
            }
        }

        await CaughtUp();
        foreach (var a in assignments) await AssertSummaryMatches($"/assignments/{a}/summary", $"/assignments/{a}/enrolments");
        foreach (var u in users) await AssertSummaryMatches($"/users/{u}/summary", $"/users/{u}/enrolments");
        var metrics = (await Host.Send(HttpMethod.Get, "/metrics", null)).AssertStatus(200).Body;
        Assert.Matches(@"(?m)^enrolment_summary_lag(_events)?(\{[^}]*\})? 0$", metrics);

        // A rebuild (teardown, then a replay of every event) gives the same numbers.
        var coordinator = Host.Services.GetRequiredService<JasperFx.Events.Daemon.IProjectionCoordinator>();
        // Each shard database has its own daemon (sharded tenancy): the tenant's is the one that rebuilds its summaries.
        var daemon = await coordinator.DaemonForDatabase(TenantPool.HomeShard);
        await daemon.RebuildProjectionAsync(Enrolment.Api.Features.Summaries.SummaryProjection.Name, CancellationToken.None);
        await CaughtUp();
        foreach (var a in assignments) await AssertSummaryMatches($"/assignments/{a}/summary", $"/assignments/{a}/enrolments");
        foreach (var u in users) await AssertSummaryMatches($"/users/{u}/summary", $"/users/{u}/enrolments");
    }

    [Fact]
    public async Task A_known_assignment_without_enrolments_answers_zeros_and_an_unknown_one_404()
    {
        await PutContent("c1");
        var empty = await CreateAssignment("nobody", "c1");
        await CaughtUp();
        var summary = (await Get($"/assignments/{empty}/summary")).AssertStatus(200).Json;
        Assert.Equal((empty, 0, 0, 0, 0), (summary.Str("assignmentId"), summary["total"]!.GetValue<int>(), summary["byStatus"]!["open"]!.GetValue<int>(),
            summary["completedOnTime"]!.GetValue<int>(), summary["waived"]!.GetValue<int>()));
        (await Get($"/assignments/{Guid.NewGuid()}/summary")).AssertProblem(404);
        (await Get("/assignments/not-a-guid/summary")).AssertProblem(422);
        (await Get("/users/nobody-here/summary")).AssertProblem(404);
        (await Get($"/assignments/{empty}/summary", Basic(TenantId, WriteSecret))).AssertProblem(403);
    }

    [Fact]
    public async Task A_waiver_and_a_late_completion_are_counted_apart_and_add_up_to_complete()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2", "u3");
        var e1 = await EnrolmentIdFor(assignmentId, "u1");
        (await Post($"/assignments/{assignmentId}/enrolments/{e1}/waive", new { reason = "exempt" })).AssertStatus(200);
        (await Complete("done-2", "u2", "c1")).AssertStatus(200);
        await CaughtUp();
        var summary = (await Get($"/assignments/{assignmentId}/summary")).AssertStatus(200).Json;
        Assert.Equal((3, 1, 2, 1, 0, 1), (summary["total"]!.GetValue<int>(), summary["byStatus"]!["open"]!.GetValue<int>(), summary["byStatus"]!["complete"]!.GetValue<int>(),
            summary["completedOnTime"]!.GetValue<int>(), summary["completedLate"]!.GetValue<int>(), summary["waived"]!.GetValue<int>()));
        var user = (await Get("/users/u1/summary")).AssertStatus(200).Json;
        Assert.Equal(("u1", 1, 1), (user.Str("userId"), user["total"]!.GetValue<int>(), user["waived"]!.GetValue<int>()));
    }

    /// <summary>
    /// The summaries wait for a slow transaction however long it stays open, and do not stop at the hole a rolled-back append
    /// leaves (Projections:StaleSequenceThreshold, 250 ms here: the slow transaction stays open for 8x that).
    /// </summary>
    [Fact]
    public async Task An_append_committed_long_after_later_ones_is_still_summarised_and_a_rolled_back_one_does_not_stop_the_summaries()
    {
        var assignmentId = await OpenAssignmentFor("u1", "u2", "u3");
        var (e1, e2, e3) = (Guid.Parse(await EnrolmentIdFor(assignmentId, "u1")), await EnrolmentIdFor(assignmentId, "u2"), await EnrolmentIdFor(assignmentId, "u3"));
        await CaughtUp();
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        var dataSource = Host.Services.GetRequiredService<Npgsql.NpgsqlDataSource>();

        // The slow writer takes its sequence number now and commits after a later write has committed.
        await using (var connection = await dataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            var options = Marten.Services.SessionOptions.ForTransaction(transaction);
            options.TenantId = TenantId;
            await using (var slow = store.LightweightSession(options))
            {
                slow.Events.Append(e1, new Enrolment.Domain.EnrolmentArchived(e1, Enrolment.Domain.ArchiveReason.AssignmentRemoved, NodaTime.SystemClock.Instance.GetCurrentInstant()));
                await slow.SaveChangesAsync();
            }
            (await Post($"/assignments/{assignmentId}/enrolments/{e2}/archive")).AssertStatus(200);
            await Task.Delay(TimeSpan.FromSeconds(2));
            await transaction.CommitAsync();
        }

        // A lost race: an append that takes a sequence number and rolls back, then a write after the hole it leaves.
        await using (var connection = await dataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            var options = Marten.Services.SessionOptions.ForTransaction(transaction);
            options.TenantId = TenantId;
            var e3Id = Guid.Parse(e3);
            await using (var lost = store.LightweightSession(options))
            {
                lost.Events.Append(e3Id, new Enrolment.Domain.EnrolmentArchived(e3Id, Enrolment.Domain.ArchiveReason.AssignmentRemoved, NodaTime.SystemClock.Instance.GetCurrentInstant()));
                await lost.SaveChangesAsync();
            }
            await transaction.RollbackAsync();
        }
        (await Post($"/assignments/{assignmentId}/enrolments/{e3}/waive", new { reason = "exempt" })).AssertStatus(200);

        await CaughtUp();
        // Had the daemon skipped the slow transaction's sequence number, the summary would count one archived enrolment.
        await AssertSummaryMatches($"/assignments/{assignmentId}/summary", $"/assignments/{assignmentId}/enrolments");
        var summary = (await Get($"/assignments/{assignmentId}/summary")).AssertStatus(200).Json;
        Assert.Equal((2, 1, 1), (summary["byStatus"]!["archived"]!.GetValue<int>(), summary["byStatus"]!["complete"]!.GetValue<int>(), summary["waived"]!.GetValue<int>()));
    }
}
