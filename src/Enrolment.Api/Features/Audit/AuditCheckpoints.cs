using System.Security.Cryptography;
using Enrolment.Api.Infrastructure.Sql;
using Enrolment.Api.Infrastructure;
using Marten;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Enrolment.Api.Features.Audit;

/// <summary>
/// A checkpoint anchors a tenant's chain as of a sequence high-water mark, chained to the tenant's previous checkpoint
/// (docs/audit.md). Form 2 (today's) digests the chain rows added since the previous checkpoint, in sequence order: the
/// checkpoints together cover every row once, so deleting any event a checkpoint covered, a stream's tail or a whole
/// stream, changes a digest `audit verify` recomputes, and taking one costs the rows written since the last. Form 1
/// (before #32) digested every stream's head and read the tenant's whole chain each time; its checkpoints still verify.
/// </summary>
public sealed class AuditCheckpoint
{
    public long Id { get; set; }                  // the tenant's checkpoint number, from 1
    public int Form { get; set; } = 1;            // documents written before form 2 have no Form: they are form 1
    public long HighWaterSequence { get; set; }
    public string TakenAt { get; set; } = "";
    // Form 2: the rows with a sequence in (FromSequence, HighWaterSequence], FromSequence being the previous checkpoint's mark.
    public long FromSequence { get; set; }
    // Form 3: how many times the tenant had moved shards (`tenants move`) when it was taken. Sequence numbers are a shard's
    // own, so a move starts a new epoch: its first checkpoint covers (0, HighWaterSequence] of the new shard, which holds
    // every copied row. The ranges of earlier epochs were verified by the move before it copied them (docs/scale-out.md).
    public int Epoch { get; set; }
    public long EventCount { get; set; }
    public string RangeDigest { get; set; } = "";
    // Form 1: the heads of every stream.
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

public sealed class AuditCheckpoints(IDocumentStore store, AuditTables tables, ILogger<AuditCheckpoints> logger)
{
    private const long LockKey = 0x61756469745f6370; // "audit_cp": one checkpointer per shard at a time across service instances

    public string Table => store.Options.FindOrResolveDocumentType(typeof(AuditCheckpoint)).TableName.QualifiedName;

    public async Task<List<AuditCheckpoint>> ForTenant(string tenantId, CancellationToken ct)
    {
        await using var session = store.QuerySession(tenantId);
        return (await session.Query<AuditCheckpoint>().OrderBy(c => c.Id).ToListAsync(ct)).ToList();
    }

    /// <summary>The tenant's latest checkpoint (null before its first), read by its key without loading the others.</summary>
    public async Task<AuditCheckpoint?> Latest(string tenantId, CancellationToken ct)
    {
        await using var session = store.QuerySession(tenantId);
        return await session.Query<AuditCheckpoint>().OrderByDescending(c => c.Id).FirstOrDefaultAsync(ct);
    }

    /// <summary>
    /// Takes a checkpoint for every tenant written to since its last one, shard by shard. <paramref name="wait"/>: wait
    /// for another instance's round instead of skipping.
    /// </summary>
    public async Task<CheckpointRound> Take(bool wait, CancellationToken ct)
    {
        var all = new CheckpointRound(0, 0, TimeSpan.Zero);
        // Shard by shard: a high-water mark is a sequence number of one database, and the lock is taken in that database.
        foreach (var shard in await store.Shards())
        {
            var round = await TakeIn(shard, wait, ct);
            all = new(all.Taken + round.Taken, all.Events + round.Events, all.Elapsed + round.Elapsed);
        }
        return all;
    }

    private async Task<CheckpointRound> TakeIn(Marten.Storage.IMartenDatabase shard, bool wait, CancellationToken ct)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        await using var connection = await TenantPool.DataSourceOf(shard).OpenConnectionAsync(ct);
        await using (var lockCommand = new NpgsqlCommand(wait ? "select pg_advisory_lock($1), true" : "select true, pg_try_advisory_lock($1)", connection))
        {
            lockCommand.Parameters.AddWithValue(LockKey);
            await using var r = await lockCommand.ExecuteReaderAsync(ct);
            await r.ReadAsync(ct);
            if (!r.GetBoolean(1)) return new(0, 0, TimeSpan.Zero);
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
                if (waited == 600) { logger.LogWarning("Audit checkpoint skipped: a transaction has stayed open for over a minute; the next round tries again."); return new(0, 0, TimeSpan.Zero); }
                await Task.Delay(100, ct);
            }

            var (taken, events) = (0, 0L);
            foreach (var tenant in await tables.ChainedTenants(connection, ct))
                if (await PlacedIn(shard, tenant, ct) && await TakeFor(connection, tenant, highWater, ct) is { } covered) { taken++; events += covered; }
            var round = new CheckpointRound(taken, events, System.Diagnostics.Stopwatch.GetElapsedTime(started));
            if (taken > 0)
                logger.LogInformation("Audit checkpoint round: {Taken} tenant(s) anchored up to sequence {HighWater}, {Events} new chain row(s) read, in {Milliseconds:F0} ms.",
                    taken, highWater, events, round.Elapsed.TotalMilliseconds);
            return round;
        }
        finally
        {
            await using var unlock = new NpgsqlCommand("select pg_advisory_unlock($1)", connection);
            unlock.Parameters.AddWithValue(LockKey);
            await unlock.ExecuteNonQueryAsync(CancellationToken.None);
        }
    }

    /// <summary>
    /// Whether the tenant lives in this shard, for the master and for this node. After `tenants move` its rows stay in
    /// the source shard for two refresh intervals, and a node may still route it there until its next refresh: a
    /// checkpoint of those rows (epoch 0, another shard's sequence numbers) written through the tenant's session landed
    /// in the target after the move's epoch-1 checkpoint, and `audit verify` failed (the scale-out scenario's move).
    /// </summary>
    private async Task<bool> PlacedIn(Marten.Storage.IMartenDatabase shard, string tenantId, CancellationToken ct)
    {
        var name = TenantPool.ShardName(shard);
        if (await store.ShardOf(tenantId, ct) != name) return false;
        try { return TenantPool.ShardName(await store.DatabaseOf(tenantId)) == name; }
        catch (InvalidOperationException) { return false; } // not yet known to this node: the next round takes it
    }

    /// <summary>
    /// One tenant's form-2 checkpoint over the rows added since its previous checkpoint; null when there are none.
    /// The previous ranges are not read again: each stays evidence of its own (a later checkpoint cannot absorb a
    /// deletion in it, as a later heads digest could in form 1), and `audit verify` recomputes them all.
    /// </summary>
    private async Task<long?> TakeFor(NpgsqlConnection connection, string tenantId, long highWater, CancellationToken ct)
    {
        var previous = await Latest(tenantId, ct);
        var epoch = await tables.Epoch(connection, tenantId, ct);
        // The first checkpoint after a move covers everything in the new shard: the previous mark is another shard's number.
        var from = previous is null || previous.Epoch < epoch ? 0 : previous.HighWaterSequence;
        if (from >= highWater) return null;

        var range = new RangeDigest();
        await foreach (var entry in tables.RangeEntries(connection, tenantId, from, highWater, ct))
            range.Add(entry.Sequence, entry.Stream, entry.Version, entry.Hash);
        var (rangeDigest, eventCount) = range.Finish();
        // Nothing new for this tenant: the range query was one empty index probe, and no checkpoint is written.
        if (eventCount == 0) return null;
        var checkpoint = new AuditCheckpoint
        {
            Id = (previous?.Id ?? 0) + 1, Form = epoch > 0 ? 3 : 2, Epoch = epoch, FromSequence = from, HighWaterSequence = highWater, TakenAt = AuditHash.Timestamp(DateTimeOffset.UtcNow),
            EventCount = eventCount, RangeDigest = rangeDigest, PreviousHash = previous?.Hash ?? AuditHash.Zeros,
        };
        checkpoint.Hash = AuditHash.Checkpoint(tenantId, checkpoint);
        await using var session = store.LightweightSession(tenantId);
        session.Insert(checkpoint);
        await session.SaveChangesAsync(ct);
        return eventCount;
    }
}

/// <summary>What a round of checkpoints did: how many tenants got one, how many chain rows they covered, how long it took.</summary>
public sealed record CheckpointRound(int Taken, long Events, TimeSpan Elapsed);

/// <summary>A form-2 range digest, fed chain rows in ascending sequence order.</summary>
public sealed class RangeDigest
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _count;

    public void Add(long sequence, Guid stream, long version, string hash)
    {
        _hash.AppendData(AuditHash.RangeLine(sequence, stream, version, hash));
        _count++;
    }

    /// <summary>The range's digest and row count; the next Add starts the next range (the verifier reads them all in one pass).</summary>
    public (string Digest, long Count) Finish()
    {
        var count = _count;
        _count = 0;
        return (Convert.ToHexStringLower(_hash.GetHashAndReset()), count);
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
