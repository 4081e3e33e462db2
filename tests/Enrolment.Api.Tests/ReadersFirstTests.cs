using Enrolment.Api.Features.Time;
using Enrolment.Api.Infrastructure;

namespace Enrolment.Api.Tests;

/// <summary>
/// Readers first (issue #32): the time-driven transitions' budget steps down while API reads are slower than idle and
/// back up when they are not. The effect on a real burst is figure 7 of ./build/bench.sh (read p99 during ÷ idle).
/// </summary>
public sealed class ReadersFirstTests
{
    [Fact]
    public void Slow_reads_step_the_burst_down_to_one_batch_and_a_longer_rest_and_fast_reads_step_it_back()
    {
        var budget = new ReadersFirst(factor: 2.0, maxParallel: 3);
        budget.Idle(p95: 8, reads: 100);
        Assert.Equal((3, TimeSpan.Zero), (budget.Parallel, budget.Pause));

        budget.BeforeRound(p95: 30, reads: 50);
        Assert.Equal((2, TimeSpan.FromMilliseconds(50)), (budget.Parallel, budget.Pause));
        for (var i = 0; i < 10; i++) budget.BeforeRound(p95: 30, reads: 50);
        Assert.Equal((1, TimeSpan.FromSeconds(1)), (budget.Parallel, budget.Pause));

        budget.BeforeRound(p95: 12, reads: 50);
        Assert.Equal((2, TimeSpan.FromMilliseconds(500)), (budget.Parallel, budget.Pause));
        for (var i = 0; i < 10; i++) budget.BeforeRound(p95: 12, reads: 50);
        Assert.Equal((3, TimeSpan.Zero), (budget.Parallel, budget.Pause));
    }

    [Theory]
    [InlineData(0.0, 100, 30.0, 50)]  // turned off
    [InlineData(2.0, 5, 30.0, 50)]    // too few idle reads to know what idle is
    [InlineData(2.0, 100, 30.0, 3)]   // too few reads in the burst's last second to judge
    public void Without_a_measure_it_can_trust_the_burst_runs_at_full_speed(double factor, int idleReads, double busyP95, int busyReads)
    {
        var budget = new ReadersFirst(factor, maxParallel: 2);
        budget.Idle(p95: 8, reads: idleReads);
        budget.BeforeRound(busyP95, busyReads);
        Assert.Equal((2, TimeSpan.Zero), (budget.Parallel, budget.Pause));
    }

    [Fact]
    public void A_node_idle_in_microseconds_is_not_slowed_by_noise()
    {
        var budget = new ReadersFirst(factor: 2.0, maxParallel: 2);
        budget.Idle(p95: 0.2, reads: 100);
        budget.BeforeRound(p95: 1.5, reads: 50); // 7.5x idle, but under the 1 ms floor times the factor
        Assert.Equal(2, budget.Parallel);
    }

    [Fact]
    public void The_latency_window_keeps_the_recent_reads_and_their_95th_percentile()
    {
        var latency = new ReadLatency();
        Assert.Equal((0.0, 0), latency.Recent(TimeSpan.FromSeconds(1)));
        for (var i = 1; i <= 100; i++) latency.Record(i);
        var (p95, count) = latency.Recent(TimeSpan.FromSeconds(10));
        Assert.Equal((95.0, 100), (p95, count));
        Thread.Sleep(60);
        Assert.Equal(0, latency.Recent(TimeSpan.FromMilliseconds(50)).Count);
        // A full ring keeps the newest samples only.
        for (var i = 0; i < 5000; i++) latency.Record(1000);
        Assert.Equal((1000.0, 4096), latency.Recent(TimeSpan.FromSeconds(10)));
    }
}
