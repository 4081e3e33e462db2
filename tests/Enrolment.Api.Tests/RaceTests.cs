using Enrolment.Api.Infrastructure;
using Enrolment.Domain;
using JasperFx;
using Marten;
using Marten.Exceptions;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using NodaTime;
using Npgsql;

namespace Enrolment.Api.Tests;

/// <summary>Lost races found by ./build/reliability.sh's races scenario, pinned down as rules.</summary>
public sealed class RaceTests(AppFixture fixture) : ScenarioTest(fixture)
{
    [Fact]
    public async Task Concurrent_membership_changes_over_the_same_users_in_any_order_never_deadlock()
    {
        // Each change writes one member row per user. Concurrent transactions that took the same rows in different
        // orders deadlocked in PostgreSQL, which the API answered as a database outage (503).
        const int users = 40;
        string[] Permutation(int step, int offset) =>
            Enumerable.Range(0, users).Select(i => $"u{(i * step + offset) % users:00}").ToArray();
        int[] coprime = [1, 3, 7, 9, 11, 13, 17, 19, 21, 23, 27, 29, 31, 33, 37, 39];
        for (var round = 0; round < 4; round++)
        {
            var audience = $"race-{round}";
            var responses = await Task.WhenAll(coprime.Select((step, i) =>
            {
                var userIds = Permutation(step, offset: i * 5);
                return i % 3 == 2
                    ? Put($"/audiences/{audience}/members", new { userIds = userIds[..30] })
                    : Post($"/audiences/{audience}/members", new { userIds });
            }));
            Assert.All(responses, r => Assert.True(r.Status == 202, $"Every membership change is accepted: {r}"));
            foreach (var accepted in responses) await WaitForOperation(accepted);
        }
    }

    [Fact]
    public async Task A_fan_out_batch_that_keeps_losing_races_is_retried_until_it_applies_never_dead_lettered()
    {
        // While reminders pour into an enrolment, the batch archiving it (its user left) loses the race for the
        // stream again and again. After four lost races it went to the dead letters: the user stayed enrolled and the
        // operation "running" for ever.
        var assignmentId = await OpenAssignmentFor("u1", "u2");
        var enrolmentId = await EnrolmentIdFor(assignmentId, "u1");
        var stream = Guid.Parse(enrolmentId);
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        using var storm = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var writers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            // Straight to the store, to change the stream faster than a batch can read and write it.
            while (!storm.IsCancellationRequested)
            {
                await using var session = store.LightweightSession(TenantId);
                var enrolment = await session.Events.FetchForWriting<EnrolmentState>(stream);
                if (enrolment.Aggregate!.Status == EnrolmentStatus.Archived) return;
                enrolment.AppendMany(EnrolmentRules.Remind(enrolment.Aggregate, SystemClock.Instance.GetCurrentInstant()).Events.Cast<object>().ToArray());
                try { await session.SaveChangesAsync(); } catch (ConcurrencyException) { }
            }
        })).ToArray();
        await Task.Delay(200);

        var leave = (await Delete("/audiences/a1/members/u1")).AssertStatus(202);
        await Task.WhenAll(writers);

        await WaitForOperation(leave, timeout: TimeSpan.FromSeconds(60));
        Assert.Equal("archived", (await GetEnrolment(assignmentId, enrolmentId)).Str("status"));
    }

    [Theory]
    [InlineData("40P01")] // deadlock_detected
    [InlineData("40001")] // serialization_failure
    public async Task A_transaction_PostgreSQL_rolls_back_to_settle_a_race_is_a_409_conflict_not_an_outage_or_a_500(string sqlState)
    {
        // Marten wraps the driver's error; the caller must see a lost race it can retry, as for an optimistic-concurrency conflict.
        var rolledBack = new MartenCommandException(new NpgsqlCommand("update …"), new PostgresException("rolled back", "ERROR", "ERROR", sqlState));
        var mapper = Host.Services.GetServices<IExceptionHandler>().OfType<ExceptionMapper>().Single();
        var context = new DefaultHttpContext { RequestServices = Host.Services };
        context.Response.Body = new MemoryStream();

        Assert.True(await mapper.TryHandleAsync(context, rolledBack, CancellationToken.None));

        context.Response.Body.Position = 0;
        var problem = new ApiResponse(context.Response.StatusCode, context.Response.Headers, await new StreamReader(context.Response.Body).ReadToEndAsync());
        Assert.Equal("concurrency-conflict", problem.AssertProblem(409).Str("code"));
    }
}
