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

public sealed class TransitionSettings
{
    /// <summary>How often the service looks for enrolments whose time has come. Bounds the lag of a transition.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Enrolments transitioned per transaction.</summary>
    public int BatchSize { get; set; } = 500;

    /// <summary>
    /// Batches applied at the same time, each its own transaction on its own connection: while one waits on
    /// PostgreSQL another uses the CPU. Batches of one round never share an enrolment, so they cannot conflict.
    /// On 2 cores shared with PostgreSQL, 2 was fastest (20,000 due at once: 1 → 37 s, 2 → 22 s, 4 → 25 s, 8 → 23 s)
    /// and cost the least CPU per transition; more pays off when PostgreSQL has cores of its own.
    /// </summary>
    public int MaxParallelBatches { get; set; } = 2;

    /// <summary>
    /// Rest between two rounds of one burst (a round: up to BatchSize × MaxParallelBatches transitions), so requests
    /// get the CPU and connections the transitions would otherwise hold for the whole burst. Zero: no rest.
    /// </summary>
    public TimeSpan PauseBetweenRounds { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// Readers first: while a burst runs, the 95th percentile of the API reads of the last second is compared with the
    /// one measured while this node had nothing due. Above this factor, each round runs one batch fewer at a time (down
    /// to one) and rests twice as long before the next (50 ms up to 1 s); below it, they come back a step a round. The
    /// transitions then take longer and readers wait less. 0 turns it off.
    /// </summary>
    public double ReadLatencyFactor { get; set; } = 2.0;

    /// <summary>Set false to run a node that serves HTTP only (another node must then apply transitions).</summary>
    public bool Enabled { get; set; } = true;
}
