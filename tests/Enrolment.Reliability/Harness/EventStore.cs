using System.Text.Json;
using System.Text.Json.Serialization;
using Enrolment.Domain;
using NodaTime;
using NodaTime.Serialization.SystemTextJson;
using Npgsql;

namespace Enrolment.Reliability.Harness;

/// <summary>
/// Reads what the service committed straight from Marten's tables (schema enrolment), bypassing the service: the
/// scenarios judge the store, not what the API says about it.
/// </summary>
public static class EventStore
{
    /// <summary>
    /// Unpooled: a pooled connection may be one the outage scenario's database restart has cut, and a verdict must not
    /// fail for that.
    /// </summary>
    private static NpgsqlConnection Connect(string connectionString) =>
        new(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString);

    // The service stores events as camelCase JSON with ISO instants and periods and camelCase enum names.
    private static readonly JsonSerializerOptions Options = CreateOptions();

    // Marten's mt_dotnet_type is "Namespace.Type, Assembly"; only enrolment events are read (assignment events are skipped).
    private static readonly Dictionary<string, Type> EnrolmentEventTypes = typeof(IEnrolmentEvent).Assembly.GetTypes()
        .Where(t => typeof(IEnrolmentEvent).IsAssignableFrom(t) && t is { IsClass: true, IsAbstract: false })
        .ToDictionary(t => t.FullName!, StringComparer.Ordinal);

    private static JsonSerializerOptions CreateOptions()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        options.ConfigureForNodaTime(DateTimeZoneProviders.Tzdb);
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.CamelCase));
        return options;
    }

    /// <summary>Every enrolment stream of the tenant (or only <paramref name="streamIds"/>), its events in version order.</summary>
    public static async Task<Dictionary<Guid, List<IEnrolmentEvent>>> EnrolmentStreams(string connectionString, string tenantId,
        IReadOnlyCollection<Guid>? streamIds, CancellationToken ct)
    {
        await using var connection = Connect(connectionString);
        await connection.OpenAsync(ct);
        await using var command = new NpgsqlCommand(
            "select stream_id, version, mt_dotnet_type, data::text from enrolment.mt_events " +
            "where tenant_id = @tenant and (@all or stream_id = any(@ids)) order by stream_id, version", connection);
        command.Parameters.AddWithValue("tenant", tenantId);
        command.Parameters.AddWithValue("all", streamIds is null);
        command.Parameters.AddWithValue("ids", (streamIds ?? []).ToArray());
        var streams = new Dictionary<Guid, List<IEnrolmentEvent>>();
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var typeName = reader.GetString(2).Split(',')[0].Trim();
            if (!EnrolmentEventTypes.TryGetValue(typeName, out var type)) continue;
            var data = (IEnrolmentEvent)(JsonSerializer.Deserialize(reader.GetString(3), type, Options)
                ?? throw new InvalidDataException($"Event {reader.GetGuid(0)} v{reader.GetInt64(1)} has null data."));
            var streamId = reader.GetGuid(0);
            if (!streams.TryGetValue(streamId, out var events)) streams[streamId] = events = [];
            events.Add(data);
        }
        return streams;
    }

    /// <summary>The status each stored EnrolmentView shows (what GET returns), by enrolment id.</summary>
    public static async Task<Dictionary<Guid, string>> ViewStatuses(string connectionString, string tenantId, CancellationToken ct)
    {
        await using var connection = Connect(connectionString);
        await connection.OpenAsync(ct);
        await using var command = new NpgsqlCommand("select id, data->>'status' from enrolment.mt_doc_enrolment where tenant_id = @tenant", connection);
        command.Parameters.AddWithValue("tenant", tenantId);
        var statuses = new Dictionary<Guid, string>();
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) statuses[reader.GetGuid(0)] = reader.IsDBNull(1) ? "" : reader.GetString(1);
        return statuses;
    }
}

/// <summary>One stream judged against PRODUCT.md's lifecycle table.</summary>
public sealed record StreamVerdict(Guid StreamId, EnrolmentStatus FinalStatus, IReadOnlyList<string> ImpossibleTransitions, IReadOnlyList<string> DuplicateCompletionIds)
{
    public string FinalStatusName => EnrolmentRules.Lower(FinalStatus);
}

/// <summary>
/// The lifecycle table as the set of (from, event, to) steps it allows, checked independently of
/// <see cref="EnrolmentRules"/> (which decided them): a bug in the rules or a lost race that slipped past optimistic
/// concurrency shows up here as an impossible step.
/// </summary>
public static class Lifecycle
{
    public static StreamVerdict Check(Guid streamId, IReadOnlyList<IEnrolmentEvent> events)
    {
        var impossible = new List<string>();
        var completionIds = new HashSet<string>(StringComparer.Ordinal);
        var duplicates = new List<string>();
        var status = EnrolmentStatus.Unassigned;
        var recurring = false;
        for (var i = 0; i < events.Count; i++)
        {
            var e = events[i];
            var after = EnrolmentEvents.StatusAfter(e, status);
            if (e is EnrolmentAssigned assigned) recurring = assigned.Schedule.IsRecurring;
            if (!Allowed(status, e, after, recurring, first: i == 0))
                impossible.Add($"stream {streamId} v{i + 1}: {EnrolmentRules.Lower(status)} --{EnrolmentEvents.EventType(e)}--> {EnrolmentRules.Lower(after)}");
            if (e is EnrolmentCompleted c && !completionIds.Add(c.CompletionId))
                duplicates.Add(c.CompletionId);
            status = after;
        }
        return new StreamVerdict(streamId, status, impossible, duplicates);
    }

    private static bool Allowed(EnrolmentStatus from, IEnrolmentEvent e, EnrolmentStatus to, bool recurring, bool first)
    {
        if (first != e is EnrolmentAssigned) return false; // a stream starts with its assignment, and only once
        return e switch
        {
            EnrolmentAssigned => from == EnrolmentStatus.Unassigned && to is EnrolmentStatus.Scheduled or EnrolmentStatus.Open,
            EnrolmentOpened => (from == EnrolmentStatus.Scheduled || (recurring && from is EnrolmentStatus.Complete or EnrolmentStatus.Overdue)) && to == EnrolmentStatus.Open,
            EnrolmentBecameOverdue => from == EnrolmentStatus.Open && to == EnrolmentStatus.Overdue,
            EnrolmentCompleted => from is EnrolmentStatus.Open or EnrolmentStatus.Overdue && to == EnrolmentStatus.Complete,
            EnrolmentRescheduled => recurring && from == EnrolmentStatus.Complete && to == EnrolmentStatus.Scheduled,
            EnrolmentArchived => from != EnrolmentStatus.Archived && to == EnrolmentStatus.Archived,
            EnrolmentReinstated => from == EnrolmentStatus.Archived && to is EnrolmentStatus.Scheduled or EnrolmentStatus.Open,
            // Reminders are eventLog entries only, and archived enrolments take none.
            ReminderRecorded => from != EnrolmentStatus.Archived && to == from,
            _ => false,
        };
    }
}
