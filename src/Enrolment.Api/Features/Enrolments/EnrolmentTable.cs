using Enrolment.Api.Infrastructure;
using Enrolment.Api.Infrastructure.Sql;
using System.Text;
using Enrolment.Api.Features.Enrolments;
using Enrolment.Domain;
using Marten;
using NodaTime;
using Npgsql;
using NpgsqlTypes;

namespace Enrolment.Api.Features.Enrolments;

/// <summary>
/// The table of the one enrolment document (<see cref="EnrolmentState"/>, table <c>mt_doc_enrolment</c>) and the SQL
/// that reads it without Marten's LINQ: the API's reads send the stored JSON as it is, minus the internal properties
/// (schedule, completion ids, counters), removed by PostgreSQL, so a read by id is one primary-key row and nothing is
/// deserialised or serialised in the service. Everything here knows Marten's table layout (column names tenant_id, id,
/// data and the duplicated columns); <c>RowParityTests</c> fails when an upgrade of Marten changes it.
/// </summary>
public sealed class EnrolmentTable
{
    /// <summary>The document alias, and so the table name <c>mt_doc_enrolment</c>.</summary>
    public const string Alias = "enrolment";

    /// <summary>
    /// The stored properties that are not part of the API's enrolment: every JSON property of <see cref="EnrolmentState"/>
    /// that <see cref="EnrolmentView"/> does not have. Derived, so a property added to the state stays private by default.
    /// </summary>
    public static readonly string[] InternalProperties = JsonNames(typeof(EnrolmentState)).Except(JsonNames(typeof(EnrolmentView)), StringComparer.Ordinal).ToArray();

    private static IEnumerable<string> JsonNames(Type type) =>
        new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver().GetTypeInfo(type, Json.Options).Properties.Select(p => p.Name);

    public static void Configure(StoreOptions opts)
    {
        opts.Schema.For<EnrolmentState>().DocumentAlias(Alias);
        // The time-driven transitions find what is due through this indexed column.
        opts.Schema.For<EnrolmentState>().Duplicate(x => x.NextTransitionAtUtc!, pgType: "timestamptz");
        // Lists filter on assignment, user and status and page by id: those are duplicated into columns, and three
        // composite indexes make a page one index range scan of limit + 1 entries at any table size (at 1M rows:
        // 38 ms -> 2.7 ms). The columns get no single-column index of their own (Duplicate() would add one each):
        // nothing queries them alone, and every index costs every write, all of them when a status changes.
        opts.Policies.ForAllDocuments(mapping =>
        {
            if (mapping.DocumentType != typeof(EnrolmentState)) return;
            mapping.DuplicateField(nameof(EnrolmentState.AssignmentId));
            mapping.DuplicateField(nameof(EnrolmentState.Status));
            mapping.DuplicateField(nameof(EnrolmentState.UserId));
            // The updatedAtFrom/updatedAtTo list filters (ours and Thrive's): a timestamptz column, range-scanned below.
            mapping.DuplicateField(nameof(EnrolmentState.UpdatedAt), pgType: "timestamptz");
        });
        opts.Schema.For<EnrolmentState>()
            .Index([x => x.AssignmentId, x => x.Status, x => x.Id], idx => idx.Name = "ix_enrolment_assignment_status_id")
            .Index([x => x.AssignmentId, x => x.Id], idx => idx.Name = "ix_enrolment_assignment_id_id")
            .Index([x => x.UserId, x => x.Status, x => x.Id], idx => idx.Name = "ix_enrolment_user_status_id")
            .Index([x => x.AssignmentId, x => x.UpdatedAt], idx => idx.Name = "ix_enrolment_assignment_updated_at")
            .Index([x => x.UserId, x => x.UpdatedAt], idx => idx.Name = "ix_enrolment_user_updated_at")
            .StartIndexesByTenantId();
    }

    private readonly IDocumentStore _store;
    private readonly string _table;

    // Every read names its tenant and runs in that tenant's shard; Due and DueCount run on the shard connection given.
    public EnrolmentTable(IDocumentStore store)
    {
        _store = store;
        _table = store.Options.FindOrResolveDocumentType(typeof(EnrolmentState)).TableName.QualifiedName;
    }

    /// <summary>The qualified table name, for the few other queries that join it.</summary>
    public string Table => _table;

    /// <summary>The enrolment's public JSON and its assignment, or null when the tenant has no such enrolment.</summary>
    public async Task<(Guid AssignmentId, string Json)?> PublicJson(string tenantId, Guid id, CancellationToken ct)
    {
        await using var command = (await _store.DataSourceOf(tenantId)).CreateCommand($"select assignment_id, (data - $3::text[])::text from {_table} where tenant_id = $1 and id = $2");
        command.Parameters.Add(new NpgsqlParameter { Value = tenantId, NpgsqlDbType = NpgsqlDbType.Varchar });
        command.Parameters.Add(new NpgsqlParameter { Value = id, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = InternalProperties, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        await using var reader = await command.ExecuteReaderAsync(System.Data.CommandBehavior.SingleRow, ct);
        return await reader.ReadAsync(ct) ? (reader.GetGuid(0), reader.GetString(1)) : null;
    }

    /// <summary>What a list may filter on; null means no filter.</summary>
    public sealed record Filter(Guid? AssignmentId = null, string? UserId = null, IReadOnlyCollection<EnrolmentStatus>? Statuses = null,
        Instant? UpdatedFrom = null, Instant? UpdatedTo = null);

    /// <summary>
    /// One page in id order after <paramref name="afterId"/> (keyset paging: an index range scan whatever the total),
    /// as public JSON, and whether more rows follow.
    /// </summary>
    public async Task<(List<(Guid Id, string Json)> Items, bool More)> Page(string tenantId, Filter filter, Guid? afterId, int limit, CancellationToken ct)
    {
        await using var connection = await (await _store.DataSourceOf(tenantId)).OpenConnectionAsync(ct);
        await using var command = PageCommand(tenantId, filter, afterId, limit + 1, offset: null);
        command.Connection = connection;
        var items = new List<(Guid, string)>(limit + 1);
        await using (var reader = await command.ExecuteReaderAsync(ct))
            while (await reader.ReadAsync(ct)) items.Add((reader.GetGuid(0), reader.GetString(1)));
        var more = items.Count > limit;
        if (more) items.RemoveAt(limit);
        return (items, more);
    }

    /// <summary>
    /// Numbered pages (Thrive's paging): the rows after skipping <paramref name="offset"/>, and the total the filter
    /// matches (carried by each row; counted apart when the page is past the last).
    /// </summary>
    public async Task<(List<string> Items, long Total)> OffsetPage(string tenantId, Filter filter, int offset, int limit, CancellationToken ct)
    {
        var items = new List<string>(limit);
        long total = 0;
        await using var connection = await (await _store.DataSourceOf(tenantId)).OpenConnectionAsync(ct);
        await using (var command = PageCommand(tenantId, filter, null, limit, offset))
        {
            command.Connection = connection;
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) { items.Add(reader.GetString(1)); total = reader.GetInt64(2); }
        }
        if (items.Count == 0 && offset > 0)
        {
            await using var count = PageCommand(tenantId, filter, null, 1, 0);
            count.Connection = connection;
            await using var reader = await count.ExecuteReaderAsync(ct);
            total = await reader.ReadAsync(ct) ? reader.GetInt64(2) : 0;
        }
        return (items, total);
    }

    /// <summary>
    /// The one list query: filtered on indexed columns, in id order, after a keyset position or an offset (then with
    /// the total as a third column). Public so that tests can check its plan uses the indexes; the caller sets the connection.
    /// </summary>
    public NpgsqlCommand PageCommand(string tenantId, Filter filter, Guid? afterId, int limit, int? offset)
    {
        var sql = new StringBuilder($"select id, (data - $1::text[])::text{(offset is null ? "" : ", count(*) over ()")} from {_table} where tenant_id = $2");
        var command = new NpgsqlCommand();
        command.Parameters.Add(new NpgsqlParameter { Value = InternalProperties, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = tenantId, NpgsqlDbType = NpgsqlDbType.Varchar });
        void Where(string condition, object value, NpgsqlDbType type)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value, NpgsqlDbType = type });
            sql.Append(" and ").Append(condition.Replace("@", "$" + command.Parameters.Count));
        }
        if (filter.AssignmentId is { } a) Where("assignment_id = @", a, NpgsqlDbType.Uuid);
        if (filter.UserId is { } u) Where("user_id = @", u, NpgsqlDbType.Varchar);
        if (filter.Statuses is { Count: > 0 } statuses)
            Where("status = any(@)", statuses.Select(MartenInternals.DuplicatedEnum).ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Varchar);
        if (filter.UpdatedFrom is { } from) Where("updated_at >= @", from.ToDateTimeOffset(), NpgsqlDbType.TimestampTz);
        if (filter.UpdatedTo is { } to) Where("updated_at < @", to.ToDateTimeOffset(), NpgsqlDbType.TimestampTz);
        if (afterId is { } after) Where("id > @", after, NpgsqlDbType.Uuid);
        command.Parameters.Add(new NpgsqlParameter { Value = limit, NpgsqlDbType = NpgsqlDbType.Integer });
        sql.Append(" order by id limit $").Append(command.Parameters.Count);
        if (offset is { } skip)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = skip, NpgsqlDbType = NpgsqlDbType.Integer });
            sql.Append(" offset $").Append(command.Parameters.Count);
        }
        command.CommandText = sql.ToString();
        return command;
    }

    /// <summary>Enrolments whose next time-driven transition is due at <paramref name="now"/>, most overdue first.</summary>
    public async Task<List<(string TenantId, Guid Id)>> Due(NpgsqlConnection connection, Instant now, int limit, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            $"select tenant_id, id from {_table} where next_transition_at_utc <= $1 order by next_transition_at_utc limit $2", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = now.ToDateTimeOffset(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter { Value = limit, NpgsqlDbType = NpgsqlDbType.Integer });
        var due = new List<(string, Guid)>();
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) due.Add((reader.GetString(0), reader.GetGuid(1)));
        return due;
    }

    /// <summary>How many enrolments are due at <paramref name="now"/> and not yet transitioned (an index range count).</summary>
    public async Task<long> DueCount(NpgsqlConnection connection, Instant now, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand($"select count(*) from {_table} where next_transition_at_utc <= $1", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = now.ToDateTimeOffset(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        return (long)(await command.ExecuteScalarAsync(ct))!;
    }
}
