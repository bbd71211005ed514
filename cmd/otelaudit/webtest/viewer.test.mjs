// Browser test of the otelaudit viewer, run by TestViewerInBrowser
// (cmd/otelaudit/viewer_test.go), which fills the database through the real
// exporter, starts `otelaudit serve` and passes:
//   VIEWER_URL    the page
//   TRACE_PREFIX  what the configured trace URL template puts before the id
//   SCREENSHOT    where to save the screenshot
//   CHROMIUM      the browser (default /usr/bin/chromium)
// When it needs a new call written it prints "RECORD" and waits for a line on
// stdin. Any failed check exits non-zero with the reason.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const url = process.env.VIEWER_URL;
const tracePrefix = process.env.TRACE_PREFIX;
const screenshot = process.env.SCREENSHOT;
const origin = new URL(url).origin;

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();

function fail(msg) {
  console.error("FAIL: " + msg);
  process.exit(1);
}
function check(cond, msg) {
  if (!cond) fail(msg);
  console.error("ok: " + msg);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
let exitCode = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const problems = [];
  page.on("dialog", (d) => { problems.push("a dialog opened: " + d.message()); d.dismiss(); });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") problems.push("console error: " + m.text()); });
  page.on("request", (r) => {
    if (!r.url().startsWith(origin + "/") && !r.url().startsWith("data:")) problems.push("request to another origin: " + r.url());
  });
  let navigations = 0;
  page.on("framenavigated", (f) => { if (f === page.mainFrame()) navigations++; });

  const rows = () => page.locator("#calls tbody tr");
  const waitRows = async (n, what) => {
    try {
      await page.waitForFunction((n) => document.querySelectorAll("#calls tbody tr").length === n, n, { timeout: 10000 });
    } catch (e) {
      fail(what + ": " + (await rows().count()) + " rows, want " + n);
    }
    check(true, what + ": " + n + " rows");
  };
  const column = async (i) => rows().evaluateAll((trs, i) => trs.map((tr) => tr.cells[i].textContent), i);

  // 1. The page loads with every call of the window (the hostile call is 2 h
  //    old: outside the default 1 h window).
  await page.goto(url);
  await waitRows(24, "page loads, default 1 h window");
  await page.waitForFunction(() => document.querySelectorAll("#chart rect").length > 0, null, { timeout: 10000 });
  check(true, "the chart has bars");
  check((await page.locator("#top-tools tbody tr").count()) === 4, "top tools lists the 4 tools");
  const badge = await page.locator("#integrity").textContent();
  check(/integrity|stream/.test(badge) && !/checking/.test(badge), "integrity state shown: " + badge.trim());

  // 2. Filters narrow the rows to the expected ones.
  await page.fill("input[name=subject]", "alice");
  await page.click("#apply");
  await waitRows(8, "subject alice");
  check((await column(1)).every((s) => s === "alice"), "every row is alice's");
  await page.selectOption("select[name=status]", "denied");
  await page.click("#apply");
  await waitRows(2, "subject alice + status denied");
  check((await column(5)).every((s) => s === "denied"), "every row is denied");
  await page.click("#clear");
  await page.fill("input[name=tool]", "github.*");
  await page.click("#apply");
  await waitRows(12, "tool glob github.*");
  check((await column(3)).every((s) => s.startsWith("github.")), "every tool matches github.*");
  await page.fill("input[name=tool]", "");
  await page.fill("input[name=args]", '{"path":"/srv/1"}');
  await page.click("#apply");
  await waitRows(12, "arguments contain path /srv/1");
  await page.click("#clear");
  await waitRows(24, "filters cleared");

  // 3. Hostile text in every field is shown as text, never run.
  await page.selectOption("#window", "24h");
  await waitRows(25, "24 h window includes the hostile call");
  const hostile = rows().filter({ hasText: "<script>alert(1)</script>" });
  check((await hostile.count()) === 1, "the hostile call's text is shown literally");
  const cells = await hostile.first().evaluate((tr) => [1, 2, 3, 4, 7].map((i) => tr.cells[i].textContent));
  check(cells.every((c) => c.includes("<script>alert(1)</script><img src=x onerror=alert(2)>")),
    "subject, role, tool, backend and error all show the script as text");
  await hostile.first().click();
  await page.waitForSelector("#detail:not([hidden])");
  const args = await page.locator("#detail-args").textContent();
  check(args.includes("<img src=x onerror=alert(2)>"), "hostile arguments shown as text");
  const fields = await page.locator("#detail-fields").textContent();
  check(fields.split("<script>alert(1)</script>").length >= 7, "every detail field shows the script as text");
  check((await page.locator("img, script:not([src])").count()) === 0, "no element was created from data");
  await page.click("#detail-close");

  // 4. A row opens with its redacted arguments and the trace link.
  await page.selectOption("#window", "1h");
  await waitRows(24, "back to 1 h");
  await page.fill("input[name=tool]", "search_docs");
  await page.click("#apply");
  await waitRows(6, "tool search_docs");
  await rows().first().click();
  await page.waitForSelector("#detail:not([hidden])");
  const detailArgs = JSON.parse(await page.locator("#detail-args").textContent());
  check(detailArgs.api_key === "[REDACTED]", "the secret argument is redacted: " + JSON.stringify(detailArgs));
  check(typeof detailArgs.path === "string" && typeof detailArgs.n === "number", "the other arguments are there");
  const link = page.locator("#trace-link");
  const traceID = await link.textContent();
  check(/^[0-9a-f]{32}$/.test(traceID), "the trace id is shown: " + traceID);
  check((await link.getAttribute("href")) === tracePrefix + traceID, "the trace link follows the configured template");
  check((await link.getAttribute("rel")).includes("noopener"), "the trace link opens without an opener");
  await page.click("#detail-close");
  await page.click("#clear");
  await waitRows(24, "filters cleared again");

  // 5. A new call appears without a reload.
  const before = navigations;
  console.log("RECORD");
  const reply = await lines.next();
  if (reply.done) fail("no reply from the test");
  try {
    await page.waitForFunction(() => [...document.querySelectorAll("#calls tbody tr td:nth-child(4)")].some((td) => td.textContent === "late.audit_probe"),
      null, { timeout: 15000 });
  } catch (e) {
    fail("the new call did not appear within 15 s");
  }
  check(navigations === before, "the new call appeared without a reload");
  check((await rows().first().locator("td").nth(3).textContent()) === "late.audit_probe", "the new call is the newest row");

  // 6. Screenshots, after the test writes an hour of varied traffic (the
  //    checks above are done; the page picks the calls up by itself).
  console.log("FILL");
  if ((await lines.next()).done) fail("no reply from the test");
  await page.waitForFunction(() => document.querySelectorAll("#chart rect").length > 40, null, { timeout: 15000 })
    .catch(() => fail("the hour of traffic did not reach the chart"));
  await page.waitForTimeout(2800); // let the "new row" highlight fade
  await page.screenshot({ path: screenshot });
  check(true, "screenshot saved to " + screenshot);
  await rows().filter({ hasText: "@example.com" }).filter({ hasText: "error" }).first().click();
  await page.waitForSelector("#detail:not([hidden])");
  const detailShot = screenshot.replace(/\.png$/, "") + "-detail.png";
  await page.screenshot({ path: detailShot });
  check(true, "screenshot with a call's detail saved to " + detailShot);

  check(problems.length === 0, "no dialog, page error, console error or foreign request" + (problems.length ? ": " + problems.join("; ") : ""));
} catch (e) {
  console.error("FAIL: " + (e && e.stack ? e.stack : e));
  exitCode = 1;
} finally {
  await browser.close();
  stdin.close();
}
process.exit(exitCode);
