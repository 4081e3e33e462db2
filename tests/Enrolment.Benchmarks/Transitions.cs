using System.Diagnostics;
using System.Text.Json;
using Npgsql;

namespace Enrolment.Benchmarks;

/// <summary>
/// Comparison 7: after `seed --due-in S --label T` made N enrolments due at one instant, wait until all N have their
/// overdue event, then report the lag distribution: event stored (mt_events.timestamp) minus the due instant the
/// event itself records.
/// </summary>
public static class Transitions
{
    public static async Task<int> Lag(Options options)
    {
        var expected = options.Int("expected", 100_000);
        var timeout = TimeSpan.FromSeconds(options.Int("timeout", 900));
        long floor;
        var tenants = $"eu-west-1\\_{options.Get("label")}%";
        await using var dataSource = NpgsqlDataSource.Create(options.Get("connection"));
        var clock = Stopwatch.StartNew();
        // Only events after the due set was seeded can be its transitions: the poll reads those by sequence (an index
        // range), not the whole event table. A whole-table count once a second kept three parallel workers scanning
        // 3,500,000 events throughout the comparison it measured, on a 2-core machine.
        await using (var floorCommand = dataSource.CreateCommand("select coalesce(max(seq_id), 0) from enrolment.mt_events"))
            floor = (long)(await floorCommand.ExecuteScalarAsync())!;
        long done = 0;
        while (clock.Elapsed < timeout)
        {
            await using var cmd = dataSource.CreateCommand("select count(*) from enrolment.mt_events where seq_id > $2 and type = 'enrolment_became_overdue' and tenant_id like $1");
            cmd.Parameters.Add(new NpgsqlParameter { Value = tenants });
            cmd.Parameters.Add(new NpgsqlParameter { Value = floor });
            done = (long)(await cmd.ExecuteScalarAsync())!;
            if (done >= expected) break;
            await Task.Delay(1000);
        }
        await using var stats = dataSource.CreateCommand("""
            with lag as (
              select extract(epoch from (timestamp - (data->>'dueDate')::timestamptz)) as s
              from enrolment.mt_events where type = 'enrolment_became_overdue' and tenant_id like $1)
            select count(*), min(s), percentile_cont(0.5) within group (order by s), percentile_cont(0.9) within group (order by s),
                   percentile_cont(0.99) within group (order by s), max(s),
                   (select count(*) from (select stream_id from enrolment.mt_events where type = 'enrolment_became_overdue' and tenant_id like $1
                                          group by stream_id having count(*) > 1) d)
            from lag
            """);
        stats.Parameters.Add(new NpgsqlParameter { Value = tenants });
        await using var r = await stats.ExecuteReaderAsync();
        await r.ReadAsync();
        double? D(int i) => r.IsDBNull(i) ? null : Convert.ToDouble(r.GetValue(i));
        Console.Out.WriteLine(JsonSerializer.Serialize(new
        {
            expected, overdue = r.GetInt64(0), minSeconds = D(1), medianSeconds = D(2), p90Seconds = D(3), p99Seconds = D(4), maxSeconds = D(5),
            duplicateStreams = r.GetInt64(6), waitedSeconds = clock.Elapsed.TotalSeconds,
        }));
        return done >= expected ? 0 : 1;
    }
}
