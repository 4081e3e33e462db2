using Enrolment.Api.Infrastructure;
using Marten.Exceptions;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
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
