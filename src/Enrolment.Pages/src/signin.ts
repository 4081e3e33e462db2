// The start page: sign in with a tenant id and a read secret; once signed in, the tenant's assignments with their
// standing (sortable, filterable, refreshed while the page is open), and a person looked up by user id.

import { ApiError, AssignmentListItem, check, contentTitle, credentials, downloadCsv, Enrolment, forget, get, Page, query, remember } from "./api";
import { assignmentHref, clearError, el, enrolmentHref, param, showError, signedIn, statusBadge } from "./layout";
import { instant } from "./time";

const TenantId = /^[a-z]{2}(-[a-z]+)+-\d_[A-Za-z0-9]+$/;
const ExternalId = /^[A-Za-z0-9._:@-]{1,64}$/;

function signInView(): void {
  document.getElementById("signed-out")!.hidden = false;
  document.getElementById("signed-in")!.hidden = true;
  if (param("signedOut")) {
    const note = document.getElementById("notice")!;
    note.hidden = false;
    note.textContent = "Signed out. The secret is no longer kept in this tab.";
  }
  const form = document.getElementById("sign-in-form") as HTMLFormElement;
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    clearError();
    const tenantId = (form.elements.namedItem("tenantId") as HTMLInputElement).value.trim();
    const secretInput = form.elements.namedItem("secret") as HTMLInputElement;
    if (!TenantId.test(tenantId)) { showError(new Error("A tenant id looks like eu-west-2_AbcdEfghI.")); return; }
    if (!secretInput.value) { showError(new Error("Enter the tenant's read secret.")); return; }
    const button = form.querySelector("button")!;
    button.disabled = true;
    try {
      const c = { tenantId, secret: secretInput.value };
      await check(c);
      remember(c);
      secretInput.value = "";
      const next = param("next");
      // Only a page of this app: never a redirect elsewhere.
      location.assign(next.startsWith("/app/") && !next.startsWith("//") ? next : "./");
    } catch (e) {
      showError(e instanceof ApiError ? e : new Error(String(e)));
    } finally {
      button.disabled = false;
    }
  });
}

const RefreshMilliseconds = 10_000;
/** At most this many assignments are shown (newest first); the CSV holds every one. */
const MaxShown = 2_000;

type SortKey = "due" | "overdue";

function homeView(): void {
  if (!signedIn()) return;
  document.getElementById("signed-out")!.hidden = true;
  document.getElementById("signed-in")!.hidden = false;
  void assignmentsView();

  const find = document.getElementById("find-person") as HTMLFormElement;
  const download = document.getElementById("person-download")!;
  let shownUser = "";
  find.addEventListener("submit", async ev => {
    ev.preventDefault();
    clearError("person-message");
    const userId = (find.elements.namedItem("userId") as HTMLInputElement).value.trim();
    const list = document.getElementById("person-enrolments")!;
    list.replaceChildren();
    download.hidden = true;
    if (!ExternalId.test(userId)) { showError(new Error("A user id is 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -"), "person-message"); return; }
    try {
      const page = await get<Page<Enrolment>>(`/users/${encodeURIComponent(userId)}/enrolments` + query({ limit: 100 }));
      const titles = new Map<string, string | null>();
      for (const content of new Set(page.items.map(e => e.primaryContentId))) titles.set(content, await contentTitle(content));
      if (page.items.length === 0) list.append(el("li", `No enrolments for ${userId}.`));
      for (const e of page.items) {
        const li = el("li");
        const title = titles.get(e.primaryContentId);
        const a = el("a", title ? `${title} (${e.primaryContentId})` : e.primaryContentId);
        a.href = enrolmentHref(e.assignmentId, e.id);
        const assignment = el("a", "assignment");
        assignment.href = assignmentHref(e.assignmentId);
        li.append(a, " ", statusBadge(e.status), " due ", instant(e.dueDate), " · ", assignment);
        list.append(li);
      }
      if (page.nextCursor) list.append(el("li", "More than 100: download the CSV for all of them."));
      shownUser = userId;
      download.hidden = page.items.length === 0;
    } catch (e) { showError(e, "person-message"); }
  });
  document.getElementById("download-person")!.addEventListener("click", async () => {
    try { await downloadCsv(`/users/${encodeURIComponent(shownUser)}/enrolments`, `enrolments-${shownUser}.csv`); }
    catch (e) { showError(e, "person-message"); }
  });
}

/** The assignments table: loaded whole (up to MaxShown), filtered by status on the server and by text here, sorted here. */
async function assignmentsView(): Promise<void> {
  const form = document.getElementById("assignment-filter") as HTMLFormElement;
  const status = form.elements.namedItem("status") as HTMLSelectElement;
  const text = form.elements.namedItem("text") as HTMLInputElement;
  const live = document.getElementById("assignments-live")!;
  let items: AssignmentListItem[] = [];
  let sort: { key: SortKey; descending: boolean } = { key: "due", descending: false };

  const load = async () => {
    const all: AssignmentListItem[] = [];
    let cursor: string | null = null;
    do {
      const page: Page<AssignmentListItem> = await get<Page<AssignmentListItem>>("/assignments" + query({ status: status.value, limit: 500, cursor }));
      all.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor && all.length < MaxShown);
    items = all;
    clearError("assignments-message");
    render();
  };

  const render = () => {
    const needle = text.value.trim().toLowerCase();
    const shown = items.filter(a => !needle || [a.title ?? "", a.primaryContentId, a.audienceId].some(v => v.toLowerCase().includes(needle)));
    const due = (a: AssignmentListItem) => a.dueDate ? Date.parse(a.dueDate) : Number.POSITIVE_INFINITY;
    const value = (a: AssignmentListItem) => sort.key === "due" ? due(a) : a.summary.byStatus.overdue;
    shown.sort((x, y) => (value(x) - value(y)) * (sort.descending ? -1 : 1) || y.createdAt.localeCompare(x.createdAt));
    for (const th of document.querySelectorAll<HTMLElement>("#assignments th[aria-sort]")) {
      const key = th.querySelector<HTMLButtonElement>("button.sort")!.dataset.sort;
      th.setAttribute("aria-sort", key === sort.key ? (sort.descending ? "descending" : "ascending") : "none");
    }
    const body = document.getElementById("assignment-rows")!;
    body.replaceChildren();
    for (const a of shown) {
      const tr = el("tr");
      tr.dataset.id = a.id;
      const training = el("th");
      training.setAttribute("scope", "row");
      const link = el("a", a.title ?? a.primaryContentId);
      link.href = assignmentHref(a.id);
      training.append(link);
      if (a.status === "removed") training.append(" ", el("span", "removed", "status status-archived"));
      const dueCell = el("td");
      dueCell.append(a.dueDate ? instant(a.dueDate) : a.completionPeriod ? `within ${a.completionPeriod}` : "—");
      const enrolled = a.summary.total - a.summary.byStatus.archived;
      const percent = enrolled > 0 ? Math.round(100 * a.summary.byStatus.complete / enrolled) : 0;
      tr.append(training, el("td", a.audienceId), dueCell, el("td", String(enrolled)), el("td", `${percent}%`), el("td", String(a.summary.byStatus.overdue)));
      body.append(tr);
    }
    if (shown.length === 0) {
      const tr = el("tr"); const td = el("td", items.length ? "No assignment matches the filter." : "No assignments yet."); td.colSpan = 6; tr.append(td); body.append(tr);
    }
    live.textContent = `${shown.length} assignment${shown.length === 1 ? "" : "s"}` + (items.length >= MaxShown ? ` (the newest ${MaxShown}; the CSV has all)` : "") +
      `; updated ${new Date().toLocaleTimeString()}.`;
  };

  for (const button of document.querySelectorAll<HTMLButtonElement>("#assignments button.sort"))
    button.addEventListener("click", () => {
      const key = button.dataset.sort as SortKey;
      sort = sort.key === key ? { key, descending: !sort.descending } : { key, descending: key === "overdue" };
      render();
    });
  status.addEventListener("change", () => void load().catch(e => showError(e, "assignments-message")));
  text.addEventListener("input", render);
  form.addEventListener("submit", ev => ev.preventDefault());
  document.getElementById("download-assignments")!.addEventListener("click", async () => {
    try { await downloadCsv("/assignments" + query({ status: status.value }), "assignments.csv"); }
    catch (e) { showError(e, "assignments-message"); }
  });

  try { await load(); } catch (e) { showError(e, "assignments-message"); return; }
  // Live: the numbers come from the summaries' projection; refreshed while the tab is visible.
  for (;;) {
    await new Promise(r => setTimeout(r, RefreshMilliseconds));
    if (document.hidden) continue;
    try { await load(); } catch (e) { live.textContent = "Updates paused: " + (e instanceof ApiError ? e.explain() : String(e)) + " Retrying."; }
  }
}

if (credentials()) homeView(); else { forget(); signInView(); }
