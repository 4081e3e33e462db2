using System.Diagnostics;
using System.Diagnostics.Metrics;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Domain;
using JasperFx;
using Marten;
using NodaTime;
using Npgsql;
using Wolverine;

namespace Enrolment.Api.Features.Time;

/// <summary>Apply whatever time-driven transitions are due now to these enrolments of the message's tenant.</summary>
public sealed record ApplyDueTransitions(Guid[] EnrolmentIds);

public static class ApplyDueTransitionsHandler
{
    public static async Task<int> Handle(ApplyDueTransitions command, IDocumentSession session, IMessageBus bus, IClock clock, ILogger<ApplyDueTransitions> logger, CancellationToken ct)
    {
        var now = clock.GetCurrentInstant();
        // The state decides: one that is no longer due (completed meanwhile, or ticked by another node) changes nothing.
        static Decision Tick(EnrolmentState state, Instant now) => state.NextTransitionAt is null ? Decision.Nothing : EnrolmentRules.Tick(state, now);

        // Time opens, reschedules and makes overdue; it never completes or reinstates, so it takes no user locks (rule 1).
        var decided = await EnrolmentWriter.Change(session, bus, command.EnrolmentIds, state => Tick(state, now), now, ct);
        var changed = decided.Where(d => d.Changed).Select(d => (Before: d.Before!, d.Decision)).ToList();

        var transitions = changed.Sum(d => d.Decision.Events.Count);
        if (transitions == 0) return 0;
        var lags = changed.Select(d => Math.Max(0, (now - d.Before.NextTransitionAt!.Value).TotalMilliseconds)).ToList();
        foreach (var lag in lags) TimeDrivenTransitions.Lag.Record(lag);
        TimeDrivenTransitions.Applied.Add(transitions);
        logger.LogInformation("Applying {Transitions} time-driven transitions to {Enrolments} enrolments of tenant {TenantId}; worst lag {LagMs:F0} ms",
            transitions, lags.Count, session.TenantId, lags.Max());
        return transitions;
    }
}
