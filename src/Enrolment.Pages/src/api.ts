// The public API, called with the signed-in tenant's credentials. They live in sessionStorage only: gone when the tab
// closes, never in a cookie or localStorage, and forgotten on sign-out.

const Key = "enrolment.credentials";

export interface Credentials { tenantId: string; secret: string }

export function credentials(): Credentials | null {
  const text = sessionStorage.getItem(Key);
  if (!text) return null;
  try { return JSON.parse(text) as Credentials; } catch { return null; }
}

export function remember(c: Credentials): void { sessionStorage.setItem(Key, JSON.stringify(c)); }

export function forget(): void { sessionStorage.clear(); }

/** An answer that was not 2xx, with the problem document's own words where the API sent one. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly title: string, readonly detail: string, readonly retryAfter: number | null) {
    super(`${status} ${title}: ${detail}`);
  }

  /** What a person should read: the API's detail, with the next step for the statuses of sign-in. */
  explain(): string {
    switch (this.status) {
      case 401: return "The tenant id or secret was not accepted. Check both and sign in again.";
      case 403: return "This secret is valid but lacks the read scope (api/read or api/all). Ask for a read secret.";
      case 429: return `Too many attempts. Try again in ${this.retryAfter ?? 60} seconds.`;
      case 404: return this.detail || "Not found in this tenant.";
      case 0: return "The service could not be reached. Check the connection and reload.";
      default: return this.detail || this.title;
    }
  }
}

/** Goes to the sign-in page, coming back here afterwards. */
export function signInAgain(): void {
  const back = location.pathname + location.search + location.hash;
  location.assign(`./?next=${encodeURIComponent(back)}`);
}

const SignedOut = () => new ApiError(401, "Signed out", "Sign in again.", null);

async function send(path: string, c: Credentials, accept: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, {
      // An explicit header, and credentials 'omit' so that a 401 never opens the browser's own sign-in dialog.
      headers: { Authorization: "Basic " + toBase64(`${c.tenantId}:${c.secret}`), Accept: accept },
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "Unreachable", "", null);
  }
  if (response.ok) return response;
  let title = response.statusText, detail = "";
  try {
    const problem = await response.json() as { title?: string; detail?: string };
    title = problem.title ?? title;
    detail = problem.detail ?? "";
  } catch { /* not a problem document: keep the status text */ }
  const retry = Number(response.headers.get("Retry-After"));
  throw new ApiError(response.status, title, detail, Number.isFinite(retry) && retry > 0 ? retry : null);
}

/** GET a JSON answer with the stored credentials; a 401 sends the person back to sign in. */
export async function get<T>(path: string, c: Credentials | null = credentials()): Promise<T> {
  if (!c) { signInAgain(); throw SignedOut(); }
  try {
    return await (await send(path, c, "application/json")).json() as T;
  } catch (e) {
    // The stored secret stopped working (revoked, or the tenant removed): forget it and ask again.
    const stored = credentials();
    if (e instanceof ApiError && e.status === 401 && stored?.tenantId === c.tenantId && stored.secret === c.secret) { forget(); signInAgain(); }
    throw e;
  }
}

/** GET an NDJSON answer as its parsed lines. */
export async function getLines<T>(path: string): Promise<T[]> {
  const c = credentials();
  if (!c) { signInAgain(); throw SignedOut(); }
  const text = await (await send(path, c, "application/x-ndjson")).text();
  return text.split("\n").filter(l => l.trim() !== "").map(l => JSON.parse(l) as T);
}

/** Checks credentials with the lightest read there is: one change of the feed. */
export async function check(c: Credentials): Promise<void> {
  await send("/changes?limit=1", c, "application/json");
}

export function query(params: Record<string, string | number | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? "?" + s : "";
}

function toBase64(text: string): string {
  let binary = "";
  for (const b of new TextEncoder().encode(text)) binary += String.fromCharCode(b);
  return btoa(binary);
}

// The API's shapes the pages read (PRODUCT.md).
export type Status = "scheduled" | "open" | "overdue" | "complete" | "archived";
export const Statuses: Status[] = ["scheduled", "open", "overdue", "complete", "archived"];

export interface EventLogEntry {
  type?: string; eventType: string; completionId: string | null; previousStatus: string; newStatus: string;
  createdAt: string; updatedAt: string; reason?: string | null;
}

export interface Enrolment {
  id: string; userId: string; assignmentId: string; audienceId: string; primaryContentId: string; status: Status;
  availableDate: string; dueDate: string | null; lastCompletedAt: string | null; eventLog: EventLogEntry[]; updatedAt: string;
}

export interface Page<T> { items: T[]; nextCursor: string | null }

export interface Assignment {
  id: string; audienceId: string; primaryContentId: string; availableDate?: string; dueDate?: string | null;
  completionPeriod?: string | null; recurrence?: string | null; timeZone?: string; status?: string;
}

/** An item of GET /assignments: the assignment, its content's title, and its summary numbers. */
export interface AssignmentListItem extends Assignment { title: string | null; status: string; createdAt: string; summary: Summary }

/** The content's title, or null when it has none (or is unknown): pages then show its id. */
export async function contentTitle(contentId: string): Promise<string | null> {
  try { return (await get<{ title?: string | null }>(`/content/${encodeURIComponent(contentId)}`)).title ?? null; }
  catch (e) { if (e instanceof ApiError && e.status === 404) return null; throw e; }
}

/**
 * Downloads a list as CSV (the API's text/csv answer, with the stored credentials: a plain link could not send them)
 * and hands it to the browser as a file.
 */
export async function downloadCsv(path: string, fileName: string, c: Credentials | null = credentials()): Promise<void> {
  if (!c) { signInAgain(); throw SignedOut(); }
  const blob = await (await send(path, c, "text/csv")).blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export interface StoredEvent {
  sequence: number; version: number; eventType: string; timestamp: string; data: Record<string, unknown>;
  hash: string | null; previousHash: string | null;
  actor: Actor; correlationId: string | null;
}

/** Who caused an event: a secret, a Mimecast key, a bus message, a fan-out operation (and who started it), the clock, or legacy. */
export interface Actor { type: string; id: string | null; startedBy?: { type: string; id: string | null } | null }

export interface Summary {
  assignmentId: string; total: number; byStatus: Record<Status, number>;
  completedOnTime: number; completedLate: number; waived: number; asOf: string;
}

export interface Change { cursor: string; eventType: string; enrolmentId: string; occurredAt: string }
export interface ChangePage { items: Change[]; nextCursor: string }
