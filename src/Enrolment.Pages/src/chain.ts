// Checks one enrolment's hash chain in the browser, as docs/verify_export.py does for a whole export: every event of
// the audit export (filtered to the enrolment's assignment and user, which is exactly its stream) is hashed again from
// its canonical form (docs/audit.md) and linked to its predecessor. The stored hashes of GET .../events must agree too.

import { getLines, query, StoredEvent } from "./api";

const Zeros = "0".repeat(64);

interface ExportEvent {
  kind: "event"; tenantId: string; streamId: string; version: number; type: string; timestamp: string;
  actor: { userName: string; correlationId: string; causationId: string; headers: string };
  dataText: string; previousHash: string | null; hash: string | null;
}
interface ExportAnchor { kind: "anchor"; events: number }

export interface ChainResult { ok: boolean; events: number; message: string }

export async function verifyChain(assignmentId: string, userId: string, enrolmentId: string, stored: StoredEvent[]): Promise<ChainResult> {
  if (!crypto.subtle) return { ok: false, events: 0, message: "Not checked: this browser offers no SHA-256 here (the page must be served over https or from localhost)." };
  const lines = await getLines<ExportEvent | ExportAnchor>("/audit/export" + query({ assignmentId, userId }));
  const anchor = lines.find((l): l is ExportAnchor => l.kind === "anchor");
  const events = lines.filter((l): l is ExportEvent => l.kind === "event" && l.streamId === enrolmentId);
  if (!anchor) return broken(0, "the export ended without its anchor line (truncated)");
  let previous = Zeros;
  for (const [i, e] of events.entries()) {
    const at = `version ${e.version}`;
    if (e.version !== i + 1) return broken(e.version, `${at}: expected version ${i + 1}, a version is missing`);
    if (e.hash === null) return broken(e.version, `${at} has no hash (not back-filled yet: ./build/run.sh audit backfill)`);
    if (e.previousHash !== previous) return broken(e.version, `${at}: its previousHash is not the hash of the event before it`);
    const a = e.actor;
    const h = await sha256(canonical("enrolment-audit-event-v1", e.tenantId, e.streamId, String(e.version), e.type, e.timestamp,
      a.userName, a.correlationId, a.causationId, a.headers, e.dataText, e.previousHash));
    if (h !== e.hash) return broken(e.version, `${at} does not hash to its stored hash: it was changed after it was written`);
    previous = h;
  }
  if (events.length !== stored.length) return broken(0, `the export has ${events.length} events, the stream ${stored.length}`);
  for (const s of stored) {
    if (s.hash !== events[s.version - 1]?.hash) return broken(s.version, `version ${s.version}: the events route and the export disagree on its hash`);
  }
  return { ok: true, events: events.length, message: `Verified: ${events.length} events, each hashed again here and linked to the one before.` };
}

function broken(version: number, why: string): ChainResult {
  return { ok: false, events: version, message: `Broken: ${why}.` };
}

/** docs/audit.md: each field as "{UTF-8 byte length}:{value}\n". */
function canonical(...values: (string | null)[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const v of values) {
    const bytes = enc.encode(v ?? "");
    parts.push(enc.encode(`${bytes.length}:`), bytes, enc.encode("\n"));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return Array.from(digest, b => b.toString(16).padStart(2, "0")).join("");
}
