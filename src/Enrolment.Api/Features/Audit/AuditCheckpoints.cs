using System.Security.Cryptography;
using Enrolment.Api.Infrastructure.Sql;
using Marten;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Enrolment.Api.Features.Audit;

/// <summary>
/// A checkpoint anchors a tenant's stream heads: a hash over every stream's (id, version, head hash) as of a sequence
/// high-water mark, chained to the tenant's previous checkpoint (docs/audit.md). Deleting a whole stream, or the tail of
/// one, that a checkpoint covered changes the heads `audit verify` recomputes.
/// </summary>
public sealed class AuditCheckpoint
{
    public long Id { get; set; }                  // the tenant's checkpoint number, from 1
    public long HighWaterSequence { get; set; }
    public string TakenAt { get; set; } = "";
    public long StreamCount { get; set; }
    public string HeadsDigest { get; set; } = "";
    public string PreviousHash { get; set; } = "";
    public string Hash { get; set; } = "";
}

public sealed class AuditSettings
{
    /// <summary>How often the tenants written to since their last checkpoint get a new one.</summary>
    public TimeSpan CheckpointInterval { get; set; } = TimeSpan.FromMinutes(1);
    public bool CheckpointsEnabled { get; set; } = true;
}

public sealed class AuditCheckpoints(NpgsqlDataSource dataSource, IDocumentStore store, AuditTables tables, ILogger<AuditCheckpoints> logger)
{
    private const long LockKey = 0x61756469745f6370; // "audit_cp": one checkpointer at a time across service instances

    public string Table => store.Options.FindOrResolveDocumentType(typeof(AuditCheckpoint)).TableName.QualifiedName;

    public async Task<List<AuditCheckpoint>> ForTenant(string tenantId, CancellationToken ct)
    {
        await using var session = store.QuerySession(tenantId);
        return (await session.Query<AuditCheckpoint>().OrderBy(c => c.Id).ToListAsync(ct)).ToList();
    }

    /// <summary>
    /// Takes a checkpoint for every tenant written to since the last round; returns how many. <paramref name="wait"/>:
    /// wait for another instance's round instead of skipping. A tenant whose previously anchored heads no longer match
    /// gets no new checkpoint (so the evidence is not anchored over) and an error in the log.
    /// </summary>
    public async Task<int> Take(bool wait, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using (var lockCommand = new NpgsqlCommand(wait ? "select pg_advisory_lock($1), true" : "select true, pg_try_advisory_lock($1)", connection))
        {
            lockCommand.Parameters.AddWithValue(LockKey);
            await using var r = await lockCommand.ExecuteReaderAsync(ct);
            await r.ReadAsync(ct);
            if (!r.GetBoolean(1)) return 0;
        }
        try
        {
            var schema = store.Options.Events.DatabaseSchemaName;
            // The high-water mark and the transactions in flight when it was read, in one snapshot. Waiting for those to
            // end makes the set of events at or below the mark final: a sequence number below it can no longer appear.
            long highWater; string xmax;
            await using (var command = new NpgsqlCommand($"select coalesce((select max(seq_id) from {schema}.mt_events), 0), pg_snapshot_xmax(pg_current_snapshot())::text", connection))
            await using (var r = await command.ExecuteReaderAsync(ct))
            {
                await r.ReadAsync(ct);
                highWater = r.GetInt64(0);
                xmax = r.GetString(1);
            }
            for (var waited = 0; ; waited++)
            {
                await using var command = new NpgsqlCommand("select pg_snapshot_xmin(pg_current_snapshot()) >= $1::text::xid8", connection);
                command.Parameters.AddWithValue(xmax);
                if ((bool)(await command.ExecuteScalarAsync(ct))!) break;
                if (waited == 600) { logger.LogWarning("Audit checkpoint skipped: a transaction has stayed open for over a minute; the next round tries again."); return 0; }
                await Task.Delay(100, ct);
            }

            long lastRound;
            await using (var command = new NpgsqlCommand($"select coalesce(max((data ->> 'highWaterSequence')::bigint), 0) from {Table}", connection))
                lastRound = (long)(await command.ExecuteScalarAsync(ct))!;
            var tenants = new List<string>();
            await using (var command = new NpgsqlCommand($"select distinct tenant_id from {schema}.{AuditChainSql.ChainTable} where seq_id > $1 and seq_id <= $2", connection))
            {
                command.Parameters.AddWithValue(lastRound);
                command.Parameters.AddWithValue(highWater);
                await using var r = await command.ExecuteReaderAsync(ct);
                while (await r.ReadAsync(ct)) tenants.Add(r.GetString(0));
            }

            var taken = 0;
            foreach (var tenant in tenants)
                if (await TakeFor(connection, tenant, highWater, ct)) taken++;
            return taken;
        }
        finally
        {
            await using var unlock = new NpgsqlCommand("select pg_advisory_unlock($1)", connection);
            unlock.Parameters.AddWithValue(LockKey);
            await unlock.ExecuteNonQueryAsync(CancellationToken.None);
        }
    }

    private async Task<bool> TakeFor(NpgsqlConnection connection, string tenantId, long highWater, CancellationToken ct)
    {
        var previous = (await ForTenant(tenantId, ct)).LastOrDefault();
        var now = Heads.Start(highWater);
        var before = previous is null ? null : Heads.Start(previous.HighWaterSequence);
        await foreach (var entry in tables.ChainEntries(connection, tenantId, ct))
        {
            now.Add(entry.Stream, entry.Version, entry.Sequence, entry.Hash);
            before?.Add(entry.Stream, entry.Version, entry.Sequence, entry.Hash);
        }
        if (previous is not null && before!.Finish() is var (digest, count) && (digest != previous.HeadsDigest || count != previous.StreamCount))
        {
            logger.LogError("Audit: the stream heads of tenant {TenantId} no longer match its checkpoint {Checkpoint} ({Then} streams then, {Now} now): events or streams it covered were changed or deleted behind the service's back. No new checkpoint is taken for this tenant until it is investigated; run `audit verify --tenant {TenantId}`.",
                tenantId, previous.Id, previous.StreamCount, count, tenantId);
            return false;
        }
        var (headsDigest, streamCount) = now.Finish();
        var checkpoint = new AuditCheckpoint
        {
            Id = (previous?.Id ?? 0) + 1, HighWaterSequence = highWater, TakenAt = AuditHash.Timestamp(DateTimeOffset.UtcNow),
            StreamCount = streamCount, HeadsDigest = headsDigest, PreviousHash = previous?.Hash ?? AuditHash.Zeros,
        };
        checkpoint.Hash = AuditHash.Checkpoint(tenantId, checkpoint.Id, checkpoint.HighWaterSequence, checkpoint.TakenAt, checkpoint.StreamCount, checkpoint.HeadsDigest, checkpoint.PreviousHash);
        await using var session = store.LightweightSession(tenantId);
        session.Insert(checkpoint);
        await session.SaveChangesAsync(ct);
        return true;
    }
}

/// <summary>The heads digest as of a high-water mark, fed entries in (stream, version) order.</summary>
public sealed class Heads
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _highWater, _count;
    private Guid? _stream;
    private long _version;
    private string _head = "";

    public static Heads Start(long highWater) => new() { _highWater = highWater };

    public void Add(Guid stream, long version, long sequence, string hash)
    {
        if (_stream != stream) { Flush(); _stream = stream; _version = 0; }
        if (sequence <= _highWater && version > _version) { _version = version; _head = hash; }
    }

    private void Flush()
    {
        if (_stream is { } s && _version > 0) { _hash.AppendData(AuditHash.HeadLine(s, _version, _head)); _count++; }
    }

    public (string Digest, long Count) Finish()
    {
        Flush();
        _stream = null;
        return (Convert.ToHexStringLower(_hash.GetHashAndReset()), _count);
    }
}

/// <summary>Takes the checkpoints every <see cref="AuditSettings.CheckpointInterval"/> while the service runs.</summary>
public sealed class AuditCheckpointService(AuditCheckpoints checkpoints, IOptions<AuditSettings> settings, ILogger<AuditCheckpointService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!settings.Value.CheckpointsEnabled) return;
        using var timer = new PeriodicTimer(settings.Value.CheckpointInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try { await checkpoints.Take(wait: false, stoppingToken); }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { return; }
            catch (Exception e) { logger.LogError(e, "Audit checkpoint failed; the next round in {Interval} tries again. Until then new streams are not anchored.", settings.Value.CheckpointInterval); }
        }
    }
}
