using Enrolment.Api.Infrastructure.Sql;

namespace Enrolment.Api.Features.Audit;

/// <summary>
/// Recomputes one tenant's chain page by page in (stream, version) order: each event's hash from its stored fields and
/// its predecessor's hash, each link, the versions without gaps; then the checkpoint chain, every form-2 checkpoint's
/// range digest and the latest form-1 checkpoint's heads against what is stored now. Stops at the first broken link but
/// counts the rest of the page.
/// </summary>
public static class AuditVerifier
{
    public sealed record Result(long Events, long Streams, string? Broken, int BrokenCount, AuditCheckpoint? Anchor);

    public static async Task<Result> Tenant(AuditTables tables, AuditCheckpoints checkpoints, string tenantId, int pageSize, CancellationToken ct)
    {
        var chain = await checkpoints.ForTenant(tenantId, ct);
        string? broken = null;
        var brokenCount = 0;
        void Break(string what) { broken ??= what; brokenCount++; }

        var previous = AuditHash.Zeros;
        var previousHighWater = 0L;
        var previousEpoch = 0;
        // The tenant's moves into its current shard: only the ranges of this epoch can be recomputed here (sequence numbers
        // are the shard's own); the move verified the earlier ones in the shard they were taken in, before copying them.
        var epoch = await tables.Epoch(null, tenantId, ct);
        for (var i = 0; i < chain.Count; i++)
        {
            var c = chain[i];
            if (c.Id != i + 1) Break($"tenant {tenantId}: checkpoint {i + 1} is missing (the next stored is {c.Id}): checkpoints were deleted");
            if (c.PreviousHash != previous) Break($"tenant {tenantId}: checkpoint {c.Id} does not link to checkpoint {c.Id - 1} (previousHash {c.PreviousHash}, expected {previous})");
            if (c.Form is not (1 or 2 or 3)) { Break($"tenant {tenantId}: checkpoint {c.Id} has form {c.Form}, which this version does not know"); break; }
            var hash = AuditHash.Checkpoint(tenantId, c);
            if (hash != c.Hash) Break($"tenant {tenantId}: checkpoint {c.Id} was changed (its hash is {c.Hash}, its fields hash to {hash})");
            if (c.Epoch < previousEpoch || c.Epoch > epoch || (c.Epoch > 0 && c.Form != 3))
                Break($"tenant {tenantId}: checkpoint {c.Id} says the tenant had moved {c.Epoch} time(s), after a checkpoint of move {previousEpoch} (moves recorded here: {epoch})");
            var expectedFrom = c.Epoch > previousEpoch ? 0 : previousHighWater;
            if (c.Form is 2 or 3 && c.FromSequence != expectedFrom)
                Break($"tenant {tenantId}: checkpoint {c.Id} covers sequences after {c.FromSequence}, but the checkpoint before it ended at {expectedFrom}{(c.Epoch > previousEpoch ? " (the first after a move starts at 0)" : "")}");
            previous = c.Hash;
            previousHighWater = c.HighWaterSequence;
            previousEpoch = c.Epoch;
        }
        var anchor = chain.LastOrDefault();
        // Form 1 anchored the stream heads; the latest form-1 checkpoint's heads are recomputed (later ones are form 2).
        // (Only before any move: the heads' sequence numbers were the first shard's.)
        var headsAnchor = epoch == 0 ? chain.LastOrDefault(c => c.Form == 1) : null;
        var heads = Heads.Start(headsAnchor?.HighWaterSequence ?? 0);

        long events = 0, streams = 0;
        Guid stream = Guid.Empty;
        long version = 0;
        string previousHash = AuditHash.Zeros;
        while (true)
        {
            var page = await tables.Page(tenantId, stream, version, pageSize, ct);
            foreach (var row in page)
            {
                if (row.StreamId != stream || streams == 0) { stream = row.StreamId; version = 0; previousHash = AuditHash.Zeros; streams++; }
                var where = $"tenant {tenantId}, enrolment {row.StreamId}, version {row.Version}";
                if (row.Version != version + 1) Break($"{where}: version {version + 1} is missing before it (an event was removed)");
                version = row.Version;
                if (row.Event is null) { Break($"{where}: the event was removed (its hash {row.Chain!.Hash} is still in the chain)"); previousHash = row.Chain.Hash; continue; }
                events++;
                if (row.Chain is null) { Break($"{where}: the event has no hash: it was inserted behind the service's back (or predates the chain: run `audit backfill`)"); continue; }
                var c = row.Chain;
                if (c.PreviousHash != previousHash) Break($"{where}: previousHash {c.PreviousHash} is not the hash of version {row.Version - 1} ({previousHash})");
                var recomputed = AuditHash.Event(row.Event, c.PreviousHash);
                if (recomputed != c.Hash) Break($"{where}: the event was changed: {Difference(row.Event, c)} (stored hash {c.Hash}, recomputed {recomputed})");
                heads.Add(row.StreamId, row.Version, c.Sequence, c.Hash);
                previousHash = c.Hash;
            }
            if (broken is not null || page.Count < pageSize) break;
        }
        if (broken is null && headsAnchor is not null)
        {
            var (digest, count) = heads.Finish();
            if (digest != headsAnchor.HeadsDigest)
                Break($"tenant {tenantId}: the stream heads anchored by checkpoint {headsAnchor.Id} no longer match ({headsAnchor.StreamCount} streams then, {count} now at the same high-water sequence {headsAnchor.HighWaterSequence}): a stream or the last events of one were deleted");
        }
        if (broken is null) await CheckRanges(tables, tenantId, chain.Where(c => c.Form is 2 or 3 && c.Epoch == epoch).ToList(), Break, ct);
        return new Result(events, streams, broken, brokenCount, anchor);
    }

    /// <summary>
    /// Recomputes every form-2 checkpoint's digest from the chain rows stored now, in one pass in sequence order (the
    /// ranges follow each other, as checked above). A row deleted or added inside a range changes that range's digest.
    /// </summary>
    private static async Task CheckRanges(AuditTables tables, string tenantId, List<AuditCheckpoint> ranges, Action<string> Break, CancellationToken ct)
    {
        if (ranges.Count == 0) return;
        var k = 0;
        var digest = new RangeDigest();
        void Close(AuditCheckpoint c)
        {
            var (d, n) = digest.Finish();
            if (d != c.RangeDigest || n != c.EventCount)
                Break($"tenant {tenantId}: the events anchored by checkpoint {c.Id} no longer match ({c.EventCount} events then, {n} now with sequences {c.FromSequence + 1}–{c.HighWaterSequence}): an event, the last events of a stream or a whole stream were deleted, or rows were added to the chain behind the service's back");
        }
        await foreach (var entry in tables.RangeEntries(null, tenantId, ranges[0].FromSequence, ranges[^1].HighWaterSequence, ct))
        {
            while (entry.Sequence > ranges[k].HighWaterSequence) Close(ranges[k++]);
            digest.Add(entry.Sequence, entry.Stream, entry.Version, entry.Hash);
        }
        for (; k < ranges.Count; k++) Close(ranges[k]);
    }

    private static string Difference(AuditHash.EventFields e, AuditChainEntry c)
    {
        var parts = new List<string>();
        if (e.Type != c.EventType) parts.Add($"type is {e.Type}, was {c.EventType}");
        if (e.Timestamp != c.Timestamp) parts.Add($"timestamp is {e.Timestamp}, was {c.Timestamp}");
        if (AuditHash.Sha256Hex(e.Data) != c.DataSha256) parts.Add("data differs from what was stored");
        return parts.Count > 0 ? string.Join("; ", parts) : "its actor metadata or its identity (tenant, stream, version) differs";
    }
}
