// The assignment page: its summary as charts, its people as a filtered table paged with the API's cursors, and live
// updates from the change feed while the page is open.

import { ArcElement, BarController, BarElement, CategoryScale, Chart, DoughnutController, Legend, LinearScale, Tooltip } from "chart.js";
import { ApiError, Assignment, ChangePage, contentTitle, downloadCsv, Enrolment, get, Page, query, Status, Statuses, Summary } from "./api";
import { clearError, el, enrolmentHref, param, showError, signedIn, statusBadge } from "./layout";
import { instant } from "./time";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, DoughnutController, ArcElement, Tooltip, Legend);

// Colours with at least 3:1 contrast on white, told apart by label and position too (never by colour alone).
const StatusColours: Record<Status, string> = {
  scheduled: "#6b7280", open: "#1d4ed8", overdue: "#b91c1c", complete: "#15803d", archived: "#78350f",
};
const CompletionColours = ["#15803d", "#c2410c", "#6d28d9"];
const PollMilliseconds = 5000;

const signedInAs = signedIn();
const assignmentId = param("id");
let statusChart: Chart | null = null;
let completionChart: Chart | null = null;

// The table's state: the filter, and the cursors of the pages seen so far (the first page has none).
let filter = { statuses: ["overdue", "open"] as string[], userId: "", limit: 25 };
let cursors: (string | null)[] = [null];
let pageIndex = 0;
let nextCursor: string | null = null;

async function main(): Promise<void> {
  if (!assignmentId) { showError(new Error("No assignment id in the address: open one from the start page.")); return; }
  let assignment: Assignment;
  try {
    assignment = await get<Assignment>(`/assignments/${encodeURIComponent(assignmentId)}`);
  } catch (e) { showError(e); return; }
  describe(assignment, await contentTitle(assignment.primaryContentId).catch(() => null));
  readFilterFromForm();
  await Promise.all([loadSummary(), loadPage()]);
  void follow();
}

function describe(a: Assignment, title: string | null): void {
  const name = title ?? a.primaryContentId;
  document.title = `${name} — assignment — Enrolments`;
  document.getElementById("title")!.textContent = `Assignment: ${name}`;
  const dl = document.getElementById("details")!;
  const row = (name: string, value: Node | string) => { dl.append(el("dt", name)); const dd = el("dd"); dd.append(value); dl.append(dd); };
  row("Training", title ? `${title} (${a.primaryContentId})` : a.primaryContentId);
  row("Assignment id", a.id);
  row("Audience", a.audienceId);
  row("Available from", instant(a.availableDate));
  if (a.dueDate) row("Due", instant(a.dueDate));
  if (a.completionPeriod) row("Completion period", a.completionPeriod);
  if (a.recurrence) row("Recurs every", a.recurrence);
  row("Time zone", a.timeZone ?? "Etc/UTC");
}

async function loadSummary(): Promise<void> {
  let s: Summary;
  try {
    s = await get<Summary>(`/assignments/${encodeURIComponent(assignmentId)}/summary`);
    clearError("summary-message");
  } catch (e) { showError(e, "summary-message"); return; }
  const counts = Statuses.map(k => s.byStatus[k] ?? 0);
  const completions = [s.completedOnTime, s.completedLate, s.waived];
  const completionLabels = ["on time", "late", "waived"];

  const statusCanvas = document.getElementById("status-chart") as HTMLCanvasElement;
  statusCanvas.setAttribute("aria-label", `Enrolments by status: ${Statuses.map((k, i) => `${k} ${counts[i]}`).join(", ")}; ${s.total} in all.`);
  statusChart = draw(statusChart, statusCanvas, "bar", Statuses, counts, Statuses.map(k => StatusColours[k]), "Enrolments");
  const completionCanvas = document.getElementById("completion-chart") as HTMLCanvasElement;
  completionCanvas.setAttribute("aria-label", `Completions: ${completionLabels.map((k, i) => `${k} ${completions[i]}`).join(", ")}.`);
  completionChart = draw(completionChart, completionCanvas, "doughnut", completionLabels, completions, CompletionColours, "Completions");

  // The same numbers as a table: for screen readers, for copying, and for anyone who prefers them.
  const body = document.getElementById("summary-numbers")!;
  body.replaceChildren();
  const add = (name: string, n: number, key: string) => {
    const tr = el("tr");
    tr.dataset.key = key;
    tr.append(el("th", name), el("td", String(n)));
    tr.firstElementChild!.setAttribute("scope", "row");
    body.append(tr);
  };
  Statuses.forEach((k, i) => add(k, counts[i], k));
  add("total", s.total, "total");
  completionLabels.forEach((k, i) => add(`completed ${k}`, completions[i], ["completedOnTime", "completedLate", "waived"][i]));
  const asOf = document.getElementById("summary-as-of")!;
  asOf.replaceChildren("Numbers accurate to ", instant(s.asOf), ".");
}

function draw(existing: Chart | null, canvas: HTMLCanvasElement, type: "bar" | "doughnut", labels: string[], data: number[], colours: string[], label: string): Chart {
  if (existing) {
    existing.data.datasets[0].data = data;
    existing.update("none");
    return existing;
  }
  return new Chart(canvas, {
    type,
    data: { labels, datasets: [{ label, data, backgroundColor: colours, borderWidth: type === "doughnut" ? 2 : 0 }] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      plugins: { legend: { display: type === "doughnut", position: "bottom" } },
      ...(type === "bar" ? { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } : {}),
    },
  });
}

function readFilterFromForm(): void {
  const form = document.getElementById("filter") as HTMLFormElement;
  const statuses = Array.from(form.querySelectorAll<HTMLInputElement>("input[name=status]:checked")).map(i => i.value);
  filter = {
    statuses,
    userId: (form.elements.namedItem("userId") as HTMLInputElement).value.trim(),
    limit: Number((form.elements.namedItem("limit") as HTMLSelectElement).value) || 25,
  };
}

async function loadPage(): Promise<void> {
  const q = query({
    status: filter.statuses.join(","), userId: filter.userId, limit: filter.limit, cursor: cursors[pageIndex],
  });
  let page: Page<Enrolment>;
  const table = document.getElementById("people")!;
  table.setAttribute("aria-busy", "true");
  try {
    page = await get<Page<Enrolment>>(`/assignments/${encodeURIComponent(assignmentId)}/enrolments${q}`);
    clearError("people-message");
  } catch (e) {
    showError(e, "people-message");
    return;
  } finally { table.setAttribute("aria-busy", "false"); }
  nextCursor = page.nextCursor;
  const body = document.getElementById("people-rows")!;
  body.replaceChildren();
  for (const e of page.items) {
    const tr = el("tr");
    const who = el("th");
    who.setAttribute("scope", "row");
    const a = el("a", e.userId);
    a.href = enrolmentHref(assignmentId, e.id);
    who.append(a);
    const status = el("td"); status.append(statusBadge(e.status));
    const due = el("td"); due.append(instant(e.dueDate));
    const done = el("td"); done.append(instant(e.lastCompletedAt));
    const updated = el("td", null, "wide-only"); updated.append(instant(e.updatedAt));
    tr.append(who, status, due, done, updated);
    body.append(tr);
  }
  if (page.items.length === 0) {
    const tr = el("tr"); const td = el("td", "Nobody matches these filters."); td.colSpan = 5; tr.append(td); body.append(tr);
  }
  const shown = filter.statuses.length ? filter.statuses.join(" or ") : "any status";
  document.getElementById("page-info")!.textContent =
    `Page ${pageIndex + 1} · ${page.items.length} people (${shown}${filter.userId ? `, user ${filter.userId}` : ""})${nextCursor ? " · more on the next page" : " · last page"}`;
  (document.getElementById("previous-page") as HTMLButtonElement).disabled = pageIndex === 0;
  (document.getElementById("next-page") as HTMLButtonElement).disabled = !nextCursor;
}

document.getElementById("download-people")!.addEventListener("click", async () => {
  readFilterFromForm();
  try {
    await downloadCsv(`/assignments/${encodeURIComponent(assignmentId)}/enrolments` + query({ status: filter.statuses.join(","), userId: filter.userId }),
      `enrolments-${assignmentId}.csv`);
    clearError("people-message");
  } catch (e) { showError(e, "people-message"); }
});

document.getElementById("filter")!.addEventListener("submit", ev => {
  ev.preventDefault();
  readFilterFromForm();
  cursors = [null];
  pageIndex = 0;
  void loadPage();
});
document.getElementById("next-page")!.addEventListener("click", () => {
  if (!nextCursor) return;
  cursors = cursors.slice(0, pageIndex + 1).concat(nextCursor);
  pageIndex++;
  void loadPage();
});
document.getElementById("previous-page")!.addEventListener("click", () => {
  if (pageIndex === 0) return;
  pageIndex--;
  void loadPage();
});

/**
 * Follows the change feed for this assignment: catches up to its end once, then polls; each batch of changes refreshes
 * the summary and the page on screen (the summary is eventually consistent, so it is refreshed once more a moment later).
 */
async function follow(): Promise<void> {
  const live = document.getElementById("live")!;
  // The table and the summary were just loaded: follow what changes from now on, not the assignment's whole history.
  let after: string | null = "now";
  const read = async () => {
    let changes = 0;
    for (;;) {
      const page: ChangePage = await get<ChangePage>("/changes" + query({ assignmentId, after, limit: 1000 }));
      after = page.nextCursor;
      changes += page.items.length;
      if (page.items.length < 1000) return changes;
    }
  };
  try { await read(); } catch (e) { live.textContent = "Live updates are off: " + (e instanceof ApiError ? e.explain() : String(e)); return; }
  live.textContent = "Live: this page updates as enrolments change.";
  for (;;) {
    await new Promise(r => setTimeout(r, PollMilliseconds));
    if (document.hidden) continue;
    try {
      const n = await read();
      if (n > 0) {
        await Promise.all([loadSummary(), loadPage()]);
        setTimeout(() => void loadSummary(), 1500);
        live.textContent = `${n} change${n === 1 ? "" : "s"} at ${new Date().toLocaleTimeString()}; the numbers and the table are up to date.`;
      }
    } catch (e) {
      live.textContent = "Live updates paused: " + (e instanceof ApiError ? e.explain() : String(e)) + " Retrying.";
    }
  }
}

if (signedInAs) void main();
