using Enrolment.Api.Features.Enrolments;
using Enrolment.Domain;
using JasperFx.Events.Projections;
using Marten;
using Marten.Events.Aggregation;
using Microsoft.Extensions.DependencyInjection;
using NodaTime;
using Wolverine;
using Wolverine.Runtime;

namespace Enrolment.Api.Tests;

/// <summary>The one writer's tripwires: what it refuses, so that its concurrency rule cannot be bypassed by mistake.</summary>
public sealed class EnrolmentWriterTests(AppFixture fixture) : ScenarioTest(fixture)
{
    [Fact]
    public async Task Completing_an_enrolment_without_holding_its_users_lock_is_refused_and_writes_nothing()
    {
        var assignmentId = await OpenAssignmentFor("u1");
        var enrolmentId = Guid.Parse(await EnrolmentIdFor(assignmentId, "u1"));
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        var bus = new MessageContext(Host.Services.GetRequiredService<IWolverineRuntime>());
        var now = SystemClock.Instance.GetCurrentInstant();
        Decision Complete(EnrolmentState state) => EnrolmentRules.Complete(state, new Completion("unlocked", "c1", now, null), now);

        await using (var session = store.LightweightSession(TenantId))
        {
            var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => EnrolmentWriter.Change(session, bus, [enrolmentId], Complete, now, CancellationToken.None));
            Assert.Contains("lock", refused.Message);
            // A lock of another user does not count either.
            var others = await EnrolmentWriter.LockUsers(session, ["u2"], CancellationToken.None);
            await Assert.ThrowsAsync<InvalidOperationException>(() => EnrolmentWriter.Change(session, bus, [enrolmentId], Complete, now, CancellationToken.None, others));
        }
        Assert.Equal("open", (await GetEnrolment(assignmentId, enrolmentId.ToString())).Str("status"));

        // Time needs no lock: it never completes or reinstates.
        await using (var session = store.LightweightSession(TenantId))
        {
            var decided = await EnrolmentWriter.Change(session, bus, [enrolmentId], state => EnrolmentRules.Tick(state, now), now, CancellationToken.None);
            Assert.Single(decided);
        }
    }

    [Fact]
    public void The_service_has_one_inline_projection_of_enrolment_events_and_the_guard_names_a_second()
    {
        var store = Host.Services.GetRequiredService<IDocumentStore>();
        Assert.Empty(OneProjectionGuard.Offending(store));

        using var second = DocumentStore.For(opts =>
        {
            opts.Connection(AppFixture.ConnectionString);
            opts.DatabaseSchemaName = "guard_test";
            opts.Projections.Add(new EnrolmentProjection(), ProjectionLifecycle.Inline);
            opts.Projections.Add(new CompletionCounter(), ProjectionLifecycle.Inline);
        });
        Assert.Equal([nameof(CompletionCounter)], OneProjectionGuard.Offending(second));
    }

    public sealed class CompletionCount
    {
        public Guid Id { get; set; }
        public int Count { get; set; }
    }

    public sealed partial class CompletionCounter : SingleStreamProjection<CompletionCount, Guid>
    {
        public CompletionCounter() => IncludeType<EnrolmentCompleted>();

        public CompletionCount Apply(EnrolmentCompleted e, CompletionCount count)
        {
            count.Count++;
            return count;
        }
    }
}
