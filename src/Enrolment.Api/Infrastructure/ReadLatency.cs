using System.Diagnostics;

namespace Enrolment.Api.Infrastructure;

/// <summary>
/// The latencies of the latest API reads (GET and HEAD answered with JSON: not exports, pages or metrics, whose duration
/// says nothing about how long a reader waits), so that background work can yield
/// to readers: the time-driven transitions slow down while reads are slower than when the node was idle (issue #32,
/// "readers first"). A fixed ring of samples, written without locks; reading it copies at most its capacity.
/// </summary>
public sealed class ReadLatency
{
    private const int Capacity = 4096;
    private readonly long[] _at = new long[Capacity];
    private readonly double[] _ms = new double[Capacity];
    private long _next;

    public void Record(double milliseconds)
    {
        var slot = (int)((Interlocked.Increment(ref _next) - 1) % Capacity);
        _ms[slot] = milliseconds;
        Volatile.Write(ref _at[slot], Stopwatch.GetTimestamp());
    }

    /// <summary>The 95th percentile of the reads that ended within <paramref name="window"/>, and how many there were.</summary>
    public (double P95, int Count) Recent(TimeSpan window)
    {
        var since = Stopwatch.GetTimestamp() - (long)(window.TotalSeconds * Stopwatch.Frequency);
        var samples = new List<double>(256);
        for (var i = 0; i < Capacity; i++)
            if (Volatile.Read(ref _at[i]) is var at and > 0 && at >= since) samples.Add(_ms[i]);
        if (samples.Count == 0) return (0, 0);
        samples.Sort();
        return (samples[Math.Min(samples.Count - 1, (int)Math.Ceiling(samples.Count * 0.95) - 1)], samples.Count);
    }
}

public static class ReadLatencyExtensions
{
    /// <summary>Times every read request from here to its answer (placed after the edge, so refused requests are not counted).</summary>
    public static void UseReadLatency(this WebApplication app)
    {
        var latency = app.Services.GetRequiredService<ReadLatency>();
        app.Use(async (context, next) =>
        {
            if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method)) { await next(context); return; }
            var started = Stopwatch.GetTimestamp();
            await next(context);
            if (context.Response.ContentType?.StartsWith("application/", StringComparison.Ordinal) == true
                && context.Response.ContentType.Contains("json", StringComparison.Ordinal))
                latency.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        });
    }
}
