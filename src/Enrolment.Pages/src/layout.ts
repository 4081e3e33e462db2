// What every signed-in page shares: the header naming the tenant, sign-out, and a place for messages.

import { ApiError, credentials, Credentials, forget, signInAgain } from "./api";

/** The credentials, with the header filled in; null (and on the way to sign-in) when there are none. */
export function signedIn(): Credentials | null {
  const c = credentials();
  if (!c) { signInAgain(); return null; }
  const who = document.getElementById("tenant");
  if (who) who.textContent = c.tenantId;
  document.getElementById("sign-out")?.addEventListener("click", () => {
    forget();
    location.assign("./?signedOut=1");
  });
  return c;
}

/** Shows an error where the page keeps its messages (an alert region: screen readers announce it). */
export function showError(e: unknown, where = "message"): void {
  const box = document.getElementById(where);
  if (!box) return;
  box.hidden = false;
  box.textContent = e instanceof ApiError ? e.explain() : e instanceof Error ? e.message : String(e);
}

export function clearError(where = "message"): void {
  const box = document.getElementById(where);
  if (box) { box.hidden = true; box.textContent = ""; }
}

export function param(name: string): string {
  return new URLSearchParams(location.search).get(name) ?? "";
}

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string | null, className?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (className) e.className = className;
  return e;
}

export function statusBadge(status: string): HTMLElement {
  return el("span", status, `status status-${status}`);
}

export function enrolmentHref(assignmentId: string, enrolmentId: string): string {
  return `enrolment.html?assignment=${encodeURIComponent(assignmentId)}&id=${encodeURIComponent(enrolmentId)}`;
}

export function assignmentHref(assignmentId: string): string {
  return `assignment.html?id=${encodeURIComponent(assignmentId)}`;
}
