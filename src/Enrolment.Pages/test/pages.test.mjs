// Drives the pages in Debian's headless Chromium (playwright-core, no browser download) against a running service, as a
// new user would, on a desktop and a phone-sized window. Run by tests/Enrolment.Api.Tests/PagesBrowserTests.cs, which
// starts the real service, seeds an assignment with a few hundred enrolments and passes what it made in PAGES_* variables.
// Exit 0 when every step held; otherwise 1, naming the step. Screenshots of each page go to PAGES_SCREENSHOTS.
import { chromium } from "playwright-core";
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const env = name => { const v = process.env[name]; if (!v) throw new Error(`${name} is not set`); return v; };
const base = env("PAGES_BASE_URL");
const tenant = env("PAGES_TENANT");
const readSecret = env("PAGES_READ_SECRET");
const writeSecret = env("PAGES_WRITE_SECRET");
const assignmentId = env("PAGES_ASSIGNMENT_ID");
const onTimeUser = env("PAGES_ON_TIME_USER");
const lateUser = env("PAGES_LATE_USER");
const contentId = env("PAGES_CONTENT_ID");
const contentTitle = env("PAGES_CONTENT_TITLE");
const tamperedUser = env("PAGES_TAMPERED_USER");
const waivedUser = env("PAGES_WAIVED_USER");
const waiveReason = env("PAGES_WAIVE_REASON");
const shots = process.env.PAGES_SCREENSHOTS ?? "pages-screenshots";
mkdirSync(shots, { recursive: true });
for (const f of readdirSync(shots)) if (f.endsWith(".png")) rmSync(join(shots, f));
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

let step = "start";
let current = null;
const log = text => console.log(`[pages] ${text}`);
function check(ok, what) { if (!ok) throw new Error(what); }

async function api(path, secret = readSecret, init = {}) {
  const response = await fetch(base + path, {
    ...init,
    headers: { authorization: "Basic " + Buffer.from(`${tenant}:${secret}`).toString("base64"), "content-type": "application/json", ...init.headers },
  });
  if (!response.ok) throw new Error(`${init.method ?? "GET"} ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

/** The summary, once its projection has caught up with every event (asOf is then the instant it was asked). */
async function settledSummary() {
  for (let i = 0; i < 60; i++) {
    const asked = Date.now();
    const s = await api(`/assignments/${assignmentId}/summary`);
    if (new Date(s.asOf).getTime() >= asked - 1000) return s;
    await new Promise(r => setTimeout(r, 500));
  }
  throw new Error("the summary did not catch up within 30 s");
}

async function axe(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const found = result.violations.map(v => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map(n => n.target.join(" ")).join("; ")}`);
  check(found.length === 0, `axe-core found accessibility violations on the ${name} page:\n  ${found.join("\n  ")}`);
}

async function shot(page, viewport, name) {
  const file = join(shots, `${viewport}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot ${file}`);
}

async function summaryTable(page) {
  return page.$$eval("#summary-numbers tr", rows => Object.fromEntries(rows.map(r => [r.dataset.key, Number(r.querySelector("td").textContent)])));
}

async function expectSummaryShown(page, s) {
  const shown = await summaryTable(page);
  const expected = { ...s.byStatus, total: s.total, completedOnTime: s.completedOnTime, completedLate: s.completedLate, waived: s.waived };
  for (const [k, v] of Object.entries(expected)) check(shown[k] === v, `the page shows ${k} = ${shown[k]}, the summary says ${v}`);
  const label = await page.getAttribute("#status-chart", "aria-label");
  for (const k of ["scheduled", "open", "overdue", "complete", "archived"]) check(label.includes(`${k} ${s.byStatus[k]}`), `the status chart says "${label}", the summary ${k} = ${s.byStatus[k]}`);
  const completions = await page.getAttribute("#completion-chart", "aria-label");
  check(completions.includes(`on time ${s.completedOnTime}`) && completions.includes(`late ${s.completedLate}`) && completions.includes(`waived ${s.waived}`),
    `the completions chart says "${completions}", the summary ${s.completedOnTime}/${s.completedLate}/${s.waived}`);
  // The chart is drawn: its canvas has painted pixels.
  const painted = await page.$eval("#status-chart", c => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  });
  check(painted > 1000, "the status chart's canvas is blank");
}

async function rowsOnPage(page) {
  return page.$$eval("#people-rows tr", rows => rows.filter(r => r.querySelector("a")).map(r => ({
    user: r.querySelector("a").textContent, status: r.querySelector(".status").textContent, href: r.querySelector("a").getAttribute("href"),
  })));
}

async function waitForPage(page, n) {
  await page.waitForFunction(n => document.getElementById("page-info").textContent.startsWith(`Page ${n} `), n);
}

async function run(browser, viewport, options) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  current = { page, viewport };
  const outside = [], errors = [];
  // A CSV download is a blob: URL of the page's own making, not a request leaving the service.
  page.on("request", r => { if (!r.url().startsWith(base + "/") && !r.url().startsWith("blob:")) outside.push(r.url()); });
  page.on("pageerror", e => errors.push(e.message));
  // The sign-in checks' own 401 and 403 are expected.
  page.on("console", m => {
    if (m.type() !== "error" || /status of 40[13]/.test(m.text())) return;
    errors.push(`${m.text()} (${m.location().url})`);
  });
  page.setDefaultTimeout(15000);

  step = `${viewport}: sign-in page`;
  await page.goto(`${base}/app/`);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await axe(page, "sign-in");
  await shot(page, viewport, "1-sign-in");

  step = `${viewport}: a wrong secret is refused (401)`;
  await page.getByLabel("Tenant id").fill(tenant);
  await page.getByLabel("Read secret").fill("not-the-secret");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "was not accepted" }).waitFor();

  step = `${viewport}: a secret without the read scope is refused (403)`;
  await page.getByLabel("Read secret").fill(writeSecret);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "lacks the read scope" }).waitFor();

  step = `${viewport}: sign in with the read secret`;
  await page.getByLabel("Read secret").fill(readSecret);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: `Enrolments of ${tenant}` }).waitFor();
  const stored = await page.evaluate(() => ({ session: Object.keys(sessionStorage), local: localStorage.length, cookies: document.cookie }));
  check(stored.session.length === 1 && stored.local === 0 && stored.cookies === "", `credentials must live in sessionStorage only: ${JSON.stringify(stored)}`);
  check((await context.cookies()).length === 0, "the pages set a cookie");
  await axe(page, "start");

  step = `${viewport}: the start page lists the assignments with their title and standing`;
  let summary = await settledSummary();
  await page.reload();
  const listed = page.locator(`#assignment-rows tr[data-id="${assignmentId}"]`);
  await listed.waitFor();
  check((await listed.locator("th a").textContent()) === contentTitle, `the list names the assignment "${await listed.locator("th a").textContent()}", not its title`);
  const cells = await listed.locator("td").allTextContents();
  check(cells[0] === "finance" || cells[0].length > 0, "the list shows no audience");
  check(Number(cells[4]) === summary.byStatus.overdue, `the list shows ${cells[4]} overdue, the summary ${summary.byStatus.overdue}`);
  check(Number(cells[2]) === summary.total - summary.byStatus.archived, `the list shows ${cells[2]} enrolled, the summary ${summary.total - summary.byStatus.archived}`);
  await axe(page, "start");
  await shot(page, viewport, "0-assignments");

  step = `${viewport}: the assignments sort by overdue and filter by text`;
  await page.getByRole("button", { name: "Overdue" }).click();
  check(await page.getAttribute("#assignments th:has(button[data-sort=overdue])", "aria-sort") === "descending", "sorting by overdue is not shown as descending");
  await page.getByLabel("Training or audience").fill("no-such-training");
  await page.locator("#assignment-rows").filter({ hasText: "No assignment matches" }).waitFor();
  await page.getByLabel("Training or audience").fill(contentTitle.slice(0, 8));
  await listed.waitFor();

  step = `${viewport}: the assignments download as CSV`;
  const [assignmentsCsv] = await Promise.all([page.waitForEvent("download"), page.locator("#download-assignments").click()]);
  const assignmentsText = readFileSync(await assignmentsCsv.path(), "utf8");
  check(assignmentsText.startsWith("assignmentId,audienceId,primaryContentId,title,"), `the assignments CSV starts "${assignmentsText.slice(0, 60)}"`);
  check(assignmentsText.includes(assignmentId) && assignmentsText.includes(`"${contentTitle}"`), "the assignments CSV lacks the assignment or its quoted title");

  step = `${viewport}: find a person by user id`;
  await page.getByLabel("User id").fill(onTimeUser);
  await page.getByRole("button", { name: "Find" }).click();
  await page.locator("#person-enrolments li a").first().waitFor();
  check((await page.locator("#person-enrolments").textContent()).includes(contentTitle), "the person's enrolments do not name the content's title");
  const [personCsv] = await Promise.all([page.waitForEvent("download"), page.locator("#download-person").click()]);
  const personLines = readFileSync(await personCsv.path(), "utf8").split("\r\n").filter(l => l);
  check(personLines.length === 2 && personLines[1].includes(`,${onTimeUser},`), `the person's CSV has ${personLines.length} lines: ${personLines.join(" | ").slice(0, 200)}`);

  step = `${viewport}: open the assignment from the list`;
  await listed.locator("th a").click();
  await page.getByRole("heading", { name: `Assignment: ${contentTitle}` }).waitFor();
  check(summary.total >= 200, `the seeded assignment has ${summary.total} enrolments, expected a few hundred`);
  await page.reload();
  await page.locator("#summary-numbers tr").first().waitFor();
  step = `${viewport}: the chart's numbers equal the summary's`;
  await expectSummaryShown(page, summary);
  await page.locator("#people-rows tr a").first().waitFor();
  await page.locator("#live").filter({ hasText: "Live" }).waitFor();
  await axe(page, "assignment");
  await shot(page, viewport, "2-assignment");

  step = `${viewport}: the assignment's people download as CSV, with the table's filters`;
  const [peopleCsv] = await Promise.all([page.waitForEvent("download"), page.locator("#download-people").click()]);
  const peopleLines = readFileSync(await peopleCsv.path(), "utf8").split("\r\n").filter(l => l);
  check(peopleLines[0] === "enrolmentId,userId,assignmentId,audienceId,primaryContentId,status,availableDate,dueDate,lastCompletedAt,late,waived,updatedAt", `the people CSV's header is "${peopleLines[0]}"`);
  const expectedRows = summary.byStatus.open + summary.byStatus.overdue;
  check(peopleLines.length - 1 === expectedRows, `the people CSV (open or overdue) has ${peopleLines.length - 1} rows, the summary counts ${expectedRows}`);

  step = `${viewport}: page through the overdue people`;
  await page.getByLabel("open", { exact: true }).uncheck();
  await page.getByLabel("Per page").selectOption("50");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await waitForPage(page, 1);
  await page.waitForFunction(() => document.getElementById("page-info").textContent.includes("overdue)"));
  const seen = new Set();
  let pages = 0, firstPage = null;
  for (;;) {
    pages++;
    const rows = await rowsOnPage(page);
    if (pages === 1) firstPage = rows.map(r => r.user).join(",");
    for (const r of rows) {
      check(r.status === "overdue", `${r.user} is listed as ${r.status} under the overdue filter`);
      check(!seen.has(r.user), `${r.user} appears on two pages`);
      seen.add(r.user);
    }
    check(rows.length <= 50, `a page shows ${rows.length} rows, more than the 50 asked for`);
    if (await page.getByRole("button", { name: "Next page" }).isDisabled()) break;
    await page.getByRole("button", { name: "Next page" }).click();
    await waitForPage(page, pages + 1);
  }
  check(seen.size === summary.byStatus.overdue, `paging showed ${seen.size} overdue people, the summary counts ${summary.byStatus.overdue}`);
  check(pages >= 2, `expected several pages of overdue people, got ${pages}`);
  step = `${viewport}: back to the first page`;
  for (let p = pages; p > 1; p--) { await page.getByRole("button", { name: "Previous page" }).click(); await waitForPage(page, p - 1); }
  check((await rowsOnPage(page)).map(r => r.user).join(",") === firstPage, "the first page differs after paging back");

  step = `${viewport}: the page updates itself when an enrolment changes`;
  // A late completion for the first overdue person on screen, recorded behind the page's back: overdue -1, complete +1,
  // late +1, and that person leaves the table.
  const before = await summaryTable(page);
  const liveUser = (await rowsOnPage(page))[0].user;
  await api("/completions", writeSecret, { method: "POST", body: JSON.stringify({
    completionId: `live-${viewport}`, userId: liveUser, contentId, completedAt: new Date().toISOString() }) });
  await page.waitForFunction(b => {
    const v = k => Number(document.querySelector(`#summary-numbers tr[data-key=${k}] td`)?.textContent);
    return v("overdue") === b.overdue - 1 && v("complete") === b.complete + 1 && v("completedLate") === b.completedLate + 1;
  }, before, { timeout: 30000 });
  await page.locator("#live").filter({ hasText: "change" }).waitFor();
  summary = await settledSummary();
  await expectSummaryShown(page, summary);
  check((await rowsOnPage(page)).every(r => r.user !== liveUser), `${liveUser} is still listed among the overdue after completing`);

  step = `${viewport}: open an overdue person with the keyboard`;
  await page.locator("#people-rows a").first().focus();
  await page.keyboard.press("Shift+Tab");
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => document.activeElement?.closest("#people-rows") !== null && document.activeElement?.tagName);
  check(focused === "A", "Tab does not reach the people's links");
  const overdueUser = await page.evaluate(() => document.activeElement.textContent);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: `${overdueUser} in ${contentTitle}` }).waitFor();
  await page.locator("#chain[data-result]").waitFor();
  check(await page.locator("#chain").getAttribute("data-result") === "verified", `the chain of ${overdueUser}: ${await page.locator("#chain").textContent()}`);
  check((await page.locator("#timeline .event-type").allTextContents()).join(",").startsWith("assigned"), "the timeline does not start with the assignment");
  check((await page.locator("#timeline .event-type").allTextContents()).includes("overdue"), "the timeline of an overdue person has no overdue event");
  const overdueEvent = page.locator("#timeline li").filter({ has: page.locator(".event-type", { hasText: /^overdue$/ }) });
  check((await overdueEvent.textContent()).includes("the clock time-driven-transitions"), "the overdue event does not name the clock as its actor");
  check((await page.locator("#zone").textContent()) === options.timezoneId, "the page does not name the browser's time zone");
  await axe(page, "enrolment");
  await shot(page, viewport, "3-enrolment-overdue");

  step = `${viewport}: a person who completed on time, and the instant before that`;
  await page.goto(`${base}/app/assignment.html?id=${assignmentId}`);
  await page.getByLabel("open", { exact: true }).uncheck();
  await page.getByLabel("overdue", { exact: true }).uncheck();
  await page.getByLabel("complete", { exact: true }).check();
  await page.getByLabel("User id").fill(onTimeUser);
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.waitForFunction(u => document.getElementById("page-info").textContent.includes(`user ${u}`), onTimeUser);
  await page.getByRole("link", { name: onTimeUser, exact: true }).click();
  await page.getByRole("heading", { name: `${onTimeUser} in ${contentTitle}` }).waitFor();
  check(await page.locator("#current-status").textContent() === "complete", "the on-time completer is not complete now");
  const events = await api(`/assignments/${assignmentId}/enrolments/${new URL(page.url()).searchParams.get("id")}/events`);
  const completed = events.find(e => e.eventType === "enrolment.completed");
  // Pick an instant in the browser's own time zone between the assignment and the completion (they may be under a
  // second apart).
  const assigned = new Date(events[0].data.at).getTime(), done = new Date(completed.data.at).getTime();
  check(done - assigned >= 2, "the completion was recorded in the same millisecond as the assignment");
  const justBefore = new Date(Math.max(assigned + 1, done - 1000));
  const local = await page.evaluate(iso => {
    const d = new Date(iso), p = (n, w = 2) => String(n).padStart(w, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  }, justBefore.toISOString());
  await page.getByLabel(/Show it as it was at/).fill(local);
  check((await page.locator("#as-of-utc").textContent()).includes(justBefore.toISOString()), "the picked instant is not shown in UTC beside the local time");
  await page.getByRole("button", { name: "Show", exact: true }).click();
  await page.locator("#state-heading").filter({ hasText: "As it was at" }).waitFor();
  check(await page.locator("#current-status").textContent() === "open", `just before its completion the enrolment shows ${await page.locator("#current-status").textContent()}, not open`);
  check(await page.locator("#timeline .event.later").count() >= 1, "the completion is not marked as after the chosen instant");
  await shot(page, viewport, "4-enrolment-as-of");
  await page.getByRole("button", { name: "Back to now" }).click();
  await page.locator("#state-heading").filter({ hasText: "Now" }).waitFor();
  check(await page.locator("#current-status").textContent() === "complete", "back to now, the enrolment is not complete");

  step = `${viewport}: a late completer, stepped back with the timeline's own button`;
  const late = await api(`/assignments/${assignmentId}/enrolments?userId=${lateUser}`);
  await page.goto(`${base}/app/enrolment.html?assignment=${assignmentId}&id=${late.items[0].id}`);
  await page.locator("#timeline li").last().waitFor();
  check((await page.locator("#timeline").textContent()).includes("completed after the due date"), "the late completion is not shown as late");
  await page.locator("#timeline li").filter({ hasText: "completed" }).getByRole("button").click();
  await page.locator("#state-heading").filter({ hasText: "As it was at" }).waitFor();
  check(await page.locator("#current-status").textContent() === "overdue", "just before a late completion the enrolment is not overdue");

  step = `${viewport}: a waived person: the reason and who waived it`;
  const waived = await api(`/assignments/${assignmentId}/enrolments?userId=${waivedUser}`);
  await page.goto(`${base}/app/enrolment.html?assignment=${assignmentId}&id=${waived.items[0].id}`);
  const waiver = page.locator("#timeline li").filter({ has: page.locator(".event-type", { hasText: /^waived$/ }) });
  await waiver.waitFor();
  const waiverText = await waiver.textContent();
  check(waiverText.includes(waiveReason), `the waiver's reason is not shown: ${waiverText}`);
  check(/API secret \S+/.test(waiverText), `the waiver does not name the secret that waived it: ${waiverText}`);
  check(await page.locator("#current-status").textContent() === "complete", "a waived enrolment is not complete");

  step = `${viewport}: a chain changed behind the service's back shows as broken`;
  const tampered = await api(`/assignments/${assignmentId}/enrolments?userId=${tamperedUser}`);
  await page.goto(`${base}/app/enrolment.html?assignment=${assignmentId}&id=${tampered.items[0].id}`);
  await page.locator("#chain[data-result]").waitFor();
  check(await page.locator("#chain").getAttribute("data-result") === "broken", `a tampered stream shows: ${await page.locator("#chain").textContent()}`);
  check((await page.locator("#chain").textContent()).includes("version 2"), `the broken link is not named: ${await page.locator("#chain").textContent()}`);
  await shot(page, viewport, "5-enrolment-broken-chain");

  step = `${viewport}: sign out`;
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await page.getByText("Signed out").waitFor();
  check(await page.evaluate(() => sessionStorage.length) === 0, "sign-out left something in sessionStorage");
  await page.goto(`${base}/app/assignment.html?id=${assignmentId}`);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await shot(page, viewport, "6-signed-out");

  step = `${viewport}: nothing came from outside the service, no script error`;
  check(outside.length === 0, `requests outside the service: ${outside.join(", ")}`);
  check(errors.length === 0, `script errors: ${errors.join(" | ")}`);
  await context.close();
  log(`${viewport}: every step held`);
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox", "--disable-dev-shm-usage"] });
try {
  await run(browser, "desktop", { viewport: { width: 1280, height: 900 }, timezoneId: "America/New_York", locale: "en-US" });
  await run(browser, "phone", { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, timezoneId: "Europe/Berlin", locale: "en-GB" });
  console.log("[pages] every step held on desktop and phone");
} catch (e) {
  console.error(`[pages] FAILED at "${step}": ${e.message}`);
  if (current) await current.page.screenshot({ path: join(shots, `${current.viewport}-failed.png`), fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
