using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Api.Features.Audiences;
using Marten;
using NodaTime;
using Npgsql;
using NpgsqlTypes;

namespace Enrolment.Api.Features.Audiences;

/// <summary>
/// Writes the member rows of one membership change (joins upserted, leaves deleted) set-based, a chunk of users per
/// statement, on the session's connection and in its transaction: a 100,000-user change no longer keeps 100,000 pending
/// documents in the session, so memory stays flat whatever the audience. The rows are those Marten's Store writes
/// (<c>RowParityTests</c> compares them). Users are taken in one order (by user id), as Marten's per-row statements
/// were, so concurrent changes over the same users wait for each other instead of deadlocking.
/// </summary>
public static class AudienceMemberRows
{
    public const int ChunkSize = 5_000;

    public static async Task Write(IDocumentSession session, string audienceId, IReadOnlyCollection<string> joins, IReadOnlyCollection<string> leaves, Instant now, CancellationToken ct)
    {
        if (joins.Count + leaves.Count == 0) return;
        var table = session.DocumentStore.Options.FindOrResolveDocumentType(typeof(AudienceMember)).TableName.QualifiedName;
        var serializer = session.DocumentStore.Options.Serializer();
        var connection = await SessionConnection.Open(session, ct);

        // Runs of joins and of leaves in user-id order, each run written a chunk at a time: locks are taken in id order.
        var leaving = leaves.ToHashSet(StringComparer.Ordinal);
        var run = new List<string>(ChunkSize);
        var runLeaves = false;
        foreach (var userId in joins.Concat(leaves).Order(StringComparer.Ordinal))
        {
            var leave = leaving.Contains(userId);
            if (run.Count > 0 && (leave != runLeaves || run.Count == ChunkSize)) await Flush();
            runLeaves = leave;
            run.Add(userId);
        }
        await Flush();

        async Task Flush()
        {
            if (run.Count == 0) return;
            var keys = run.Select(u => AudienceMember.Key(audienceId, u)).ToArray();
            await using var command = new NpgsqlCommand { Connection = connection };
            command.Parameters.Add(new NpgsqlParameter { Value = session.TenantId, NpgsqlDbType = NpgsqlDbType.Varchar });
            command.Parameters.Add(new NpgsqlParameter { Value = keys, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Varchar });
            if (runLeaves)
            {
                // tenant_id outside too: the table is LIST-partitioned by tenant (sharded tenancy) and a ctid is unique only
                // within one partition, so a delete by ctid alone also removed other tenants' rows at the same positions
                // (IsolationScenario caught it). With the tenant, the delete reads only this tenant's partition.
                command.CommandText = $"delete from {table} where tenant_id = $1 and ctid = any(array(select ctid from {table} where tenant_id = $1 and id = any($2) order by id for update))";
            }
            else
            {
                var documents = run.Select(u => serializer.ToJson(new AudienceMember { Id = AudienceMember.Key(audienceId, u), AudienceId = audienceId, UserId = u, JoinedAt = now })).ToArray();
                command.CommandText =
                    $"insert into {table} as d (tenant_id, id, data, mt_last_modified, mt_version, mt_dotnet_type, audience_id) " +
                    "select $1, m.id, m.data, transaction_timestamp(), gen_random_uuid(), $4, $5 from unnest($2, $3::jsonb[]) as m(id, data) order by m.id " +
                    "on conflict (tenant_id, id) do update set data = excluded.data, mt_last_modified = excluded.mt_last_modified, " +
                    "mt_version = excluded.mt_version, mt_dotnet_type = excluded.mt_dotnet_type, audience_id = excluded.audience_id";
                command.Parameters.Add(new NpgsqlParameter { Value = documents, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb });
                command.Parameters.Add(new NpgsqlParameter { Value = typeof(AudienceMember).FullName, NpgsqlDbType = NpgsqlDbType.Varchar });
                command.Parameters.Add(new NpgsqlParameter { Value = audienceId, NpgsqlDbType = NpgsqlDbType.Varchar });
            }
            await command.ExecuteNonQueryAsync(ct);
            run.Clear();
        }
    }
}
