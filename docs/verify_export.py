#!/usr/bin/env python3
"""Verifies an export of GET /audit/export (docs/audit.md) without the service: python3 verify_export.py export.ndjson
Exit 0 when every event's hash and link holds (prints the anchor hash to compare with one you kept); 1 naming the first
broken line. Standard library only."""
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

def main(path):
    streams = {}   # stream id -> (last version, last hash, [(sequence, version, hash)] only for whole-tenant exports)
    heads = {}
    anchor = None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            e = json.loads(line)
            if e["kind"] == "anchor":
                anchor = e
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
            heads.setdefault(e["streamId"], []).append((e["sequence"], e["version"], h))
    if anchor is None:
        return fail("no anchor line: the export is truncated")
    events = sum(v for v, _ in streams.values())
    if anchor["events"] != events:
        return fail("the anchor says %d events, the export has %d" % (anchor["events"], events))
    c = anchor["checkpoint"]
    if c is None:
        print("OK: %d events in %d streams; no checkpoint yet" % (events, len(streams)))
        return 0
    h = sha(fields("enrolment-audit-checkpoint-v1", anchor["tenantId"], str(c["number"]), str(c["highWaterSequence"]), c["takenAt"],
                   str(c["streamCount"]), c["headsDigest"], c["previousHash"]))
    if h != c["hash"]:
        return fail("the checkpoint does not hash to its hash (recomputed %s)" % h)
    if anchor["wholeTenant"]:
        digest, count = hashlib.sha256(), 0
        for stream in sorted(heads):
            covered = [(v, hh) for s, v, hh in heads[stream] if s <= c["highWaterSequence"]]
            if covered:
                v, hh = max(covered)
                digest.update(("%s:%d:%s\n" % (stream, v, hh)).encode())
                count += 1
        if digest.hexdigest() != c["headsDigest"] or count != c["streamCount"]:
            return fail("the stream heads do not match checkpoint %d (%d streams then, %d in the export): a stream or its last events are missing" % (c["number"], c["streamCount"], count))
    print("OK: %d events in %d streams; checkpoint %d hash %s" % (events, len(streams), c["number"], c["hash"]))
    return 0

def fail(message):
    print("BROKEN: " + message)
    return 1

if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
