// The enrolment page: its history as a timeline, the enrolment as it was at a chosen instant (?asOf=), and whether its
// hash chain holds.

import { Actor, contentTitle, Enrolment, EventLogEntry, get, query, StoredEvent } from "./api";
import { verifyChain } from "./chain";
import { assignmentHref, clearError, el, param, showError, signedIn, statusBadge } from "./layout";
import { fromLocalInput, instant, toLocalInput, zoneName } from "./time";

const signedInAs = signedIn();
const assignmentId = param("assignment");
const enrolmentId = param("id");
const base = `/assignments/${encodeURIComponent(assignmentId)}/enrolments/${encodeURIComponent(enrolmentId)}`;
let events: StoredEvent[] = [];
let log: EventLogEntry[] = [];

async function main(): Promise<void> {
  const back = document.getElementById("back") as HTMLAnchorElement;
  back.href = assignmentHref(assignmentId);
  document.getElementById("zone")!.textContent = zoneName();
  let current: Enrolment;
  try {
    [current, events] = await Promise.all([get<Enrolment>(base), get<StoredEvent[]>(base + "/events")]);
  } catch (e) { showError(e); return; }
  log = current.eventLog;
  const training = (await contentTitle(current.primaryContentId).catch(() => null)) ?? current.primaryContentId;
  document.title = `${current.userId} — ${training} — Enrolments`;
  document.getElementById("title")!.textContent = `${current.userId} in ${training}`;
  render(current, null);
  timeline(null);
  void chain(current);
  const asOf = param("asOf");
  if (asOf) await showAsOf(asOf);
}

function render(e: Enrolment, asOf: string | null): void {
  const heading = document.getElementById("state-heading")!;
  heading.replaceChildren(asOf ? "As it was at " : "Now", ...(asOf ? [instant(asOf)] : []));
  const dl = document.getElementById("state")!;
  dl.replaceChildren();
  const row = (name: string, value: Node | string) => { dl.append(el("dt", name)); const dd = el("dd"); dd.append(value); dl.append(dd); };
  const status = statusBadge(e.status);
  status.id = "current-status";
  row("Status", status);
  row("User", e.userId);
  row("Audience", e.audienceId);
  row("Available from", instant(e.availableDate));
  row("Due", instant(e.dueDate));
  row("Last completed", instant(e.lastCompletedAt));
  row("Changes so far", String(e.eventLog.length));
  row("Last updated", instant(e.updatedAt));
}

/** Every event, oldest first; those after the chosen instant are marked as not yet happened. */
function timeline(asOf: string | null): void {
  const list = document.getElementById("timeline")!;
  list.replaceChildren();
  events.forEach((ev, i) => {
    const entry = log[i];
    const at = String(ev.data["at"] ?? entry?.createdAt ?? ev.timestamp);
    const later = asOf !== null && new Date(at) > new Date(asOf);
    const li = el("li", null, later ? "event later" : "event");
    li.dataset.version = String(ev.version);
    const title = el("h3");
    title.append(el("span", ev.eventType.replace(/^enrolment\./, ""), "event-type"), " ");
    if (entry) title.append(statusBadge(entry.previousStatus), " → ", statusBadge(entry.newStatus));
    li.append(title);
    const dl = el("dl");
    const row = (name: string, value: Node | string) => { dl.append(el("dt", name)); const dd = el("dd"); dd.append(value); dl.append(dd); };
    row("When", instant(at));
    row("Actor", actor(ev));
    const completionId = entry?.completionId ?? (ev.data["completionId"] as string | undefined);
    if (completionId) row("Completion id", completionId);
    const reason = entry?.reason ?? ev.data["reason"];
    if (reason !== undefined && reason !== null) row("Reason", String(reason));
    if (ev.data["late"] === true) row("Late", "yes: completed after the due date");
    if (ev.correlationId) row("Correlation id", ev.correlationId);
    row("Version", String(ev.version));
    li.append(dl);
    if (later) li.append(el("p", "After the chosen instant: it had not happened yet.", "later-note"));
    const before = el("button", "Show the enrolment just before this", "secondary");
    before.type = "button";
    before.setAttribute("aria-label", `Show the enrolment just before this: version ${ev.version}, ${ev.eventType}`);
    before.addEventListener("click", () => void showAsOf(new Date(new Date(at).getTime() - 1).toISOString()));
    if (i > 0) li.append(before);
    list.append(li);
  });
}

const ActorNames: Record<string, string> = {
  secret: "API secret", "mimecast-key": "Mimecast key", bus: "bus message", operation: "fan-out operation", clock: "the clock",
};

function actor(ev: StoredEvent): string {
  const name = (a: Actor): string => a.type === "legacy"
    ? "not recorded (written before actors were)"
    : `${ActorNames[a.type] ?? a.type}${a.id ? ` ${a.id}` : ""}${a.startedBy ? `, started by ${name(a.startedBy)}` : ""}`;
  return name(ev.actor);
}

async function showAsOf(iso: string): Promise<void> {
  clearError("as-of-message");
  const input = document.getElementById("as-of") as HTMLInputElement;
  input.value = toLocalInput(iso);
  document.getElementById("as-of-utc")!.textContent = `${iso} UTC`;
  try {
    const past = await get<Enrolment>(base + query({ asOf: iso }));
    render(past, iso);
    timeline(iso);
    history.replaceState(null, "", location.pathname + query({ assignment: assignmentId, id: enrolmentId, asOf: iso }));
  } catch (e) { showError(e, "as-of-message"); }
}

async function chain(current: Enrolment): Promise<void> {
  const box = document.getElementById("chain")!;
  box.textContent = "Checking the hash chain…";
  try {
    const result = await verifyChain(assignmentId, current.userId, enrolmentId, events);
    box.className = result.ok ? "chain verified" : "chain broken";
    box.textContent = result.message;
    box.dataset.result = result.ok ? "verified" : "broken";
  } catch (e) {
    box.className = "chain broken";
    box.dataset.result = "unchecked";
    showError(e, "chain");
  }
}

const form = document.getElementById("as-of-form") as HTMLFormElement;
const input = document.getElementById("as-of") as HTMLInputElement;
input.addEventListener("input", () => {
  const iso = fromLocalInput(input.value);
  document.getElementById("as-of-utc")!.textContent = iso ? `${iso} UTC` : "";
});
form.addEventListener("submit", ev => {
  ev.preventDefault();
  const iso = fromLocalInput(input.value);
  if (!iso) { showError(new Error("Pick a date and time."), "as-of-message"); return; }
  void showAsOf(iso);
});
document.getElementById("now")!.addEventListener("click", async () => {
  clearError("as-of-message");
  input.value = "";
  document.getElementById("as-of-utc")!.textContent = "";
  history.replaceState(null, "", location.pathname + query({ assignment: assignmentId, id: enrolmentId }));
  try {
    const current = await get<Enrolment>(base);
    render(current, null);
    timeline(null);
  } catch (e) { showError(e, "as-of-message"); }
});

if (signedInAs) void main();
