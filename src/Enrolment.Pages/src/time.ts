// Instants as people read them: the local time of this browser beside UTC, the API's own form.

const local = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function zoneName(): string { return Intl.DateTimeFormat().resolvedOptions().timeZone; }

/** "2 Dec 2026, 10:04:05 (Europe/Paris) · 2026-12-02T09:04:05.123Z UTC", as a <time> element. */
export function instant(iso: string | null | undefined): HTMLElement {
  const span = document.createElement("span");
  if (!iso) { span.textContent = "—"; return span; }
  const t = document.createElement("time");
  t.dateTime = iso;
  t.textContent = local.format(new Date(iso));
  const utc = document.createElement("span");
  utc.className = "utc";
  utc.textContent = ` ${iso} UTC`;
  span.append(t, utc);
  span.title = `${local.format(new Date(iso))} in ${zoneName()}; ${iso} UTC`;
  return span;
}

/** The value of a datetime-local input (the browser's local time) as an API instant, or null. */
export function fromLocalInput(value: string): string | null {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** An instant as a datetime-local value in the browser's time zone, to the millisecond. */
export function toLocalInput(iso: string): string {
  const d = new Date(iso);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}
