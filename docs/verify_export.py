#!/usr/bin/env python3
"""Verifies an export of GET /audit/export (docs/audit.md) without the service: python3 verify_export.py export.ndjson
Exit 0 when every event's hash and link holds, the checkpoints chain, and (on a whole-tenant export) each checkpoint's
digest matches the exported events; prints the anchor hash to compare with one you kept. Exit 1 naming the first broken
line. Standard library only. Reads exports of every checkpoint form: older exports (form 1, no checkpoint lines) verify
as they always did; form 3 is form 2 after the tenant moved shards."""
import hashlib, json, sys

ZEROS = "0" * 64

def fields(*values):
    out = b""
    for v in values:
        b = (v or "").encode("utf-8")
        out += str(len(b)).encode() + b":" + b + b"\n"
    return out

def sha(data):
    return hashlib.sha256(data).hexdigest()

def checkpoint_hash(tenant, c):
    if c.get("form", 1) == 1:
        return sha(fields("enrolment-audit-checkpoint-v1", tenant, str(c["number"]), str(c["highWaterSequence"]), c["takenAt"],
                          str(c["streamCount"]), c["headsDigest"], c["previousHash"]))
    if c["form"] == 3:
        return sha(fields("enrolment-audit-checkpoint-v3", tenant, str(c["number"]), str(c["epoch"]), str(c["fromSequence"]),
                          str(c["highWaterSequence"]), c["takenAt"], str(c["eventCount"]), c["rangeDigest"], c["previousHash"]))
    return sha(fields("enrolment-audit-checkpoint-v2", tenant, str(c["number"]), str(c["fromSequence"]), str(c["highWaterSequence"]),
                      c["takenAt"], str(c["eventCount"]), c["rangeDigest"], c["previousHash"]))

def main(path):
    streams = {}   # stream id -> (last version, last hash)
    links = []     # (sequence, stream id, version, hash) of every event
    checkpoints = []
    anchor = None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            e = json.loads(line)
            if e["kind"] == "anchor":
                anchor = e
                continue
            if e["kind"] == "checkpoint":
                checkpoints.append(e["checkpoint"])
                continue
            where = "line %d (stream %s, version %s)" % (n, e["streamId"], e["version"])
            if json.loads(e["dataText"]) != e["data"]:
                return fail(where + ": dataText and data differ")
            last_version, last_hash = streams.get(e["streamId"], (0, ZEROS))
            if e["version"] != last_version + 1:
                return fail(where + ": expected version %d" % (last_version + 1))
            if e["previousHash"] != last_hash:
                return fail(where + ": previousHash is not the hash of the previous event")
            a = e["actor"]
            h = sha(fields("enrolment-audit-event-v1", e["tenantId"], e["streamId"], str(e["version"]), e["type"], e["timestamp"],
                           a["userName"], a["correlationId"], a["causationId"], a["headers"], e["dataText"], e["previousHash"]))
            if h != e["hash"]:
                return fail(where + ": the event does not hash to its hash (recomputed %s)" % h)
            streams[e["streamId"]] = (e["version"], h)
            links.append((e["sequence"], e["streamId"], e["version"], h))
    if anchor is None:
        return fail("no anchor line: the export is truncated")
    events = sum(v for v, _ in streams.values())
    if anchor["events"] != events:
        return fail("the anchor says %d events, the export has %d" % (anchor["events"], events))
    c = anchor["checkpoint"]
    if c is None:
        if checkpoints:
            return fail("the anchor names no checkpoint, but the export has %d" % len(checkpoints))
        print("OK: %d events in %d streams; no checkpoint yet" % (events, len(streams)))
        return 0
    tenant = anchor["tenantId"]
    if not checkpoints:
        checkpoints = [c]   # an export written before checkpoint lines existed: only the latest one (form 1)
    elif checkpoints[-1] != c:
        return fail("the anchor's checkpoint is not the last checkpoint line")
    else:
        previous, high, epoch = ZEROS, 0, 0
        for i, k in enumerate(checkpoints, 1):
            if k["number"] != i:
                return fail("checkpoint %d is missing (the next one is %d)" % (i, k["number"]))
            if k["previousHash"] != previous:
                return fail("checkpoint %d does not link to checkpoint %d" % (i, i - 1))
            # Form 3: taken after the tenant moved shards; the first of a new epoch starts again at 0 (a new shard's numbers).
            k_epoch = k.get("epoch", 0)
            if k_epoch < epoch:
                return fail("checkpoint %d is of move epoch %d, after one of epoch %d" % (i, k_epoch, epoch))
            start = 0 if k_epoch > epoch else high
            if k.get("form", 1) in (2, 3) and k["fromSequence"] != start:
                return fail("checkpoint %d starts after sequence %d, but checkpoint %d ended at %d" % (i, k["fromSequence"], i - 1, high))
            previous, high, epoch = k["hash"], k["highWaterSequence"], k_epoch
    for k in checkpoints:
        h = checkpoint_hash(tenant, k)
        if h != k["hash"]:
            return fail("checkpoint %d does not hash to its hash (recomputed %s)" % (k["number"], h))
    # The export's sequence numbers are the tenant's current shard's: only the ranges of the latest move epoch are
    # recomputable (the move verified the earlier ones before it copied them).
    latest_epoch = max(k.get("epoch", 0) for k in checkpoints)
    if anchor["wholeTenant"]:
        for k in checkpoints:
            if k.get("form", 1) in (2, 3) and k.get("epoch", 0) == latest_epoch:
                digest, count = hashlib.sha256(), 0
                for s, stream, v, hh in sorted(l for l in links if k["fromSequence"] < l[0] <= k["highWaterSequence"]):
                    digest.update(("%d:%s:%d:%s\n" % (s, stream, v, hh)).encode())
                    count += 1
                if digest.hexdigest() != k["rangeDigest"] or count != k["eventCount"]:
                    return fail("the events of checkpoint %d do not match it (%d then, %d in the export): an event, a stream's last events or a stream is missing" % (k["number"], k["eventCount"], count))
        heads_anchor = [k for k in checkpoints if k.get("form", 1) == 1] if latest_epoch == 0 else []
        if heads_anchor:
            k = heads_anchor[-1]
            digest, count, heads = hashlib.sha256(), 0, {}
            for s, stream, v, hh in links:
                if s <= k["highWaterSequence"] and v > heads.get(stream, (0, ""))[0]:
                    heads[stream] = (v, hh)
            for stream in sorted(heads):
                digest.update(("%s:%d:%s\n" % (stream, heads[stream][0], heads[stream][1])).encode())
                count += 1
            if digest.hexdigest() != k["headsDigest"] or count != k["streamCount"]:
                return fail("the stream heads do not match checkpoint %d (%d streams then, %d in the export): a stream or its last events are missing" % (k["number"], k["streamCount"], count))
    print("OK: %d events in %d streams; checkpoint %d hash %s" % (events, len(streams), c["number"], c["hash"]))
    return 0

def fail(message):
    print("BROKEN: " + message)
    return 1

if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
