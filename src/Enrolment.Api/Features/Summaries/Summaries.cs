using Enrolment.Domain;
using Marten;
using NodaTime;
using Npgsql;

namespace Enrolment.Api.Features.Summaries;

/// <summary>The summaries answer: counts of current statuses and the instant they are accurate to.</summary>
public sealed record StatusCounts(int Scheduled, int Open, int Overdue, int Complete, int Archived);

public sealed record AssignmentSummaryView(Guid AssignmentId, int Total, StatusCounts ByStatus, int CompletedOnTime, int CompletedLate, int Waived, Instant AsOf);

public sealed record UserSummaryView(string UserId, int Total, StatusCounts ByStatus, int CompletedOnTime, int CompletedLate, int Waived, Instant AsOf);

public static class Summaries
{
    public static StatusCounts ByStatus(EnrolmentSummary? s) =>
        s is null ? new(0, 0, 0, 0, 0) : new(s.Scheduled, s.Open, s.Overdue, s.Complete, s.Archived);

    public static int Total(StatusCounts c) => c.Scheduled + c.Open + c.Overdue + c.Complete + c.Archived;

    /// <summary>
    /// The instant the summaries are accurate to: now when the daemon has processed every committed event, else the
    /// timestamp of the last event it processed (the start of time when it has processed none).
    /// </summary>
    /// Read in the session's shard: the daemon of that database projects its tenants, and its sequence numbers are its own.
    public static async Task<Instant> AsOf(IQuerySession session, IClock clock, CancellationToken ct)
    {
        var dataSource = Infrastructure.TenantPool.DataSourceOf(session.Database);
        var schema = session.DocumentStore.Options.Events.DatabaseSchemaName;
        var now = clock.GetCurrentInstant();
        await using var command = dataSource.CreateCommand($"""
            select p.last_seq_id, (select max(seq_id) from {schema}.mt_events),
                   (select e.timestamp from {schema}.mt_events e where e.seq_id = p.last_seq_id)
            from (select coalesce((select last_seq_id from {schema}.mt_event_progression where name = $1), 0) as last_seq_id) p
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = SummaryProjection.Name + ":All" });
        await using var reader = await command.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        var processed = reader.GetInt64(0);
        if (reader.IsDBNull(1) || processed >= reader.GetInt64(1)) return now;
        return reader.IsDBNull(2) ? Instant.FromUnixTimeMilliseconds(0) : Instant.FromDateTimeOffset(reader.GetFieldValue<DateTimeOffset>(2));
    }
}
