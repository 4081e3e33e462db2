// The start page: sign in with a tenant id and a read secret; once signed in, open an assignment or look a person up.

import { ApiError, check, credentials, Enrolment, forget, get, Page, query, remember } from "./api";
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

function homeView(): void {
  if (!signedIn()) return;
  document.getElementById("signed-out")!.hidden = true;
  document.getElementById("signed-in")!.hidden = false;

  const open = document.getElementById("open-assignment") as HTMLFormElement;
  open.addEventListener("submit", ev => {
    ev.preventDefault();
    const id = (open.elements.namedItem("assignmentId") as HTMLInputElement).value.trim();
    if (id) location.assign(assignmentHref(id));
  });

  const find = document.getElementById("find-person") as HTMLFormElement;
  find.addEventListener("submit", async ev => {
    ev.preventDefault();
    clearError("person-message");
    const userId = (find.elements.namedItem("userId") as HTMLInputElement).value.trim();
    const list = document.getElementById("person-enrolments")!;
    list.replaceChildren();
    if (!ExternalId.test(userId)) { showError(new Error("A user id is 1–64 characters of A–Z, a–z, 0–9 and . _ : @ -"), "person-message"); return; }
    try {
      const page = await get<Page<Enrolment>>(`/users/${encodeURIComponent(userId)}/enrolments` + query({ limit: 100 }));
      if (page.items.length === 0) list.append(el("li", `No enrolments for ${userId}.`));
      for (const e of page.items) {
        const li = el("li");
        const a = el("a", `${e.primaryContentId} (assignment ${e.assignmentId})`);
        a.href = enrolmentHref(e.assignmentId, e.id);
        const assignment = el("a", "assignment");
        assignment.href = assignmentHref(e.assignmentId);
        li.append(a, " ", statusBadge(e.status), " due ", instant(e.dueDate), " · ", assignment);
        list.append(li);
      }
      if (page.nextCursor) list.append(el("li", "More than 100: open an assignment to page through them."));
    } catch (e) { showError(e, "person-message"); }
  });
}

if (credentials()) homeView(); else { forget(); signInView(); }
