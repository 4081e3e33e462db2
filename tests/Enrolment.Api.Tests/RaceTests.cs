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
}
