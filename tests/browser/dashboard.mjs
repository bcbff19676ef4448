// The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core.
//
//   CDRFLOW_API_TOKEN=TOKEN node tests/browser/dashboard.mjs BASE_URL SCREENSHOT_DIR
//
// Expects a daemon with a billed month, and records flowing in while it runs (the
// pipeline page must show live throughput and rejects). With CDRFLOW_API_TOKEN, the
// daemon's API token: first the page must ask for it, ask again after a wrong one, and
// show the data once given the right one (each new tab asks again). Checks, page by page: no console
// error, page error, failed request or HTTP error; every chart drawn with data; then that
// filters change the figures to what the API says, the drill-down from a region reaches
// an event's explanation, a CSV download is byte for byte the API's CSV, an invoice PDF
// link serves a PDF, the phone layout does not scroll sideways. Writes a full-page
// screenshot of every page. Exits 1 with the list of failures.

import { chromium, request } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [base, shots] = process.argv.slice(2).map((s, i) => (i === 0 ? s.replace(/\/$/, '') : s));
if (!base || !shots) {
  console.error('usage: node dashboard.mjs BASE_URL SCREENSHOT_DIR');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// A closed network: no QUIC, no component updates, no background fetches.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TIMEOUT = 30_000;
const TOKEN = process.env.CDRFLOW_API_TOKEN || '';
const started = Date.now();
const failures = [];
let checks = 0;

function check(ok, what) {
  checks += 1;
  if (ok) {
    console.log(`  ok    ${what}`);
  } else {
    console.log(`  FAIL  ${what}`);
    failures.push(what);
  }
  return ok;
}

// One named part of the run; an exception fails it and the run goes on.
async function step(name, fn) {
  console.log(`- ${name}`);
  const t = Date.now();
  try {
    await fn();
  } catch (e) {
    check(false, `${name}: ${e.message.split('\n')[0]}`);
  }
  console.log(`  (${((Date.now() - t) / 1000).toFixed(1)} s)`);
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
// Reduced motion: the dashboard then draws charts without animation, so a screenshot
// never catches a bar half-grown.
const desktop = await browser.newContext({
  viewport: { width: 1440, height: 900 }, reducedMotion: 'reduce', acceptDownloads: true,
});
// The test's own calls to the API carry the token; the pages must ask for it.
const api = await request.newContext({
  extraHTTPHeaders: TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {},
});

// Everything that went wrong in the browser since the last `takeProblems()`.
let problems = [];
function watch(page) {
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // A link followed as a download ends its navigation request this way.
    if (r.failure()?.errorText === 'net::ERR_ABORTED' && r.isNavigationRequest()) return;
    problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
}
function takeProblems() {
  const p = problems;
  problems = [];
  return p;
}

// The API's 401s before a tab has the token are expected: Chromium reports each as a
// failed response and a console error.
function drop401s() {
  problems = problems.filter((p) => !/^HTTP 401: /.test(p) && !/status of 401/.test(p));
}

// Enter `token` in the page's token prompt, once it asks.
async function enterToken(page, token) {
  await page.waitForSelector('#signin[open]', { timeout: TIMEOUT });
  await page.fill('#signin-token', token);
  await page.click('#signin button[type=submit]');
}

// A new tab asks for the token; given it, it shows its view.
async function signIn(page) {
  if (!TOKEN) return;
  await enterToken(page, TOKEN);
  await page.waitForSelector('#signin', { state: 'hidden', timeout: TIMEOUT });
}

async function getJSON(path) {
  const r = await api.get(base + path);
  if (!r.ok()) throw new Error(`GET ${path}: ${r.status()} ${await r.text()}`);
  return r.json();
}

// Go to a view and wait until every figure of it has been drawn (or failed).
async function open(page, hash) {
  const before = await page.evaluate(() => Number(document.getElementById('view')?.dataset.render || 0)).catch(() => 0);
  if (page.url().startsWith(base)) {
    await page.evaluate((h) => { location.hash = h; }, hash);
  } else {
    await page.goto(`${base}/${hash}`);
  }
  await waitRendered(page, before);
}

async function waitRendered(page, before) {
  await page.waitForFunction((n) => {
    const v = document.getElementById('view');
    return v && Number(v.dataset.render) > n && v.dataset.ready === '1';
  }, before, { timeout: TIMEOUT });
}

async function renderCount(page) {
  return page.evaluate(() => Number(document.getElementById('view').dataset.render));
}

// Every chart of the view: drawn by Chart.js, with data, not all zero, with a size.
async function charts(page) {
  return page.evaluate(() => [...document.querySelectorAll('#view canvas')].map((c) => {
    const chart = window.Chart && Chart.getChart(c);
    const label = c.getAttribute('aria-label');
    const card = c.closest('[data-card]')?.dataset.card;
    if (!chart) return { label, card, drawn: false };
    const values = chart.data.datasets.flatMap((d) => d.data)
      .map((v) => (typeof v === 'number' ? v : v && typeof v === 'object' ? v.y ?? v.x : null));
    return {
      label,
      card,
      drawn: true,
      type: chart.config.type,
      datasets: chart.data.datasets.length,
      points: values.length,
      nonZero: values.some((v) => typeof v === 'number' && Number.isFinite(v) && v !== 0),
      nonNegative: values.every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0),
      sized: c.width > 0 && c.height > 0,
    };
  }));
}

// `mayBeZero`: cards whose chart may truly read zero throughout (consumer lag: a daemon
// that keeps up with 100 records/s has nothing left on the broker whenever librdkafka's
// statistics are taken); their values must still be finite and not negative.
async function checkCharts(page, name, atLeast, mayBeZero = []) {
  const list = await charts(page);
  check(list.length >= atLeast, `${name}: ${list.length} charts (at least ${atLeast})`);
  for (const c of list) {
    const zeroOk = mayBeZero.includes(c.card) && c.nonNegative;
    check(c.drawn && c.datasets > 0 && c.points > 0 && (c.nonZero || zeroOk) && c.sized,
      `${name}: chart "${c.label}" has data (${c.drawn ? `${c.type}, ${c.datasets} datasets, ${c.points} points${c.nonZero ? '' : ', all zero'}` : 'not drawn'})`);
  }
}

async function checkClean(page, name) {
  const errors = await page.locator('#view .error').allTextContents();
  check(errors.length === 0, `${name}: no error shown${errors.length ? `: ${errors.join(' | ')}` : ''}`);
  const p = takeProblems();
  check(p.length === 0, `${name}: no console error, page error or failed request${p.length ? `:\n        ${p.join('\n        ')}` : ''}`);
}

async function screenshot(page, file) {
  await page.evaluate(() => document.activeElement?.blur());
  await page.screenshot({ path: join(shots, file), fullPage: true });
}

// The displayed text of a KPI's value.
async function kpiText(page, name) {
  return page.locator(`[data-kpi="${name}"] .value`).innerText();
}

// "1,234.57 MAD" / "12,345" → 1234.57 / 12345
function figure(text) {
  return Number(text.replace(/[^0-9.-]/g, ''));
}

function round2(s) {
  return Math.round(Number(s) * 100) / 100;
}

const page = await desktop.newPage();
watch(page);

// What the data holds: a billed month (the one the first invoice is of).
let filters;
let billed = null;
try {
  filters = await getJSON('/api/filters');
  const invoices = await getJSON('/api/invoices?limit=1');
  billed = invoices.length ? String(invoices[0].period).slice(0, 7) : null;
} catch (e) {
  console.error(`The daemon at ${base} does not answer: ${e.message.split('\n')[0]}`);
  await browser.close();
  process.exit(1);
}
check(billed !== null, `the daemon has a billed month (${billed})`);
check(filters.periods.length > 0 && filters.regions.length > 0, `/api/filters offers periods ${filters.periods.join(', ')}`);

await step('token: the page asks for the API token, refuses a wrong one, shows the data with the right one', async () => {
  if (!TOKEN) {
    check(true, 'no API token configured: nothing to ask');
    return;
  }
  const r = await fetch(`${base}/api/filters`);
  check(r.status === 401 && /^Bearer /.test(r.headers.get('www-authenticate') || ''),
    `without the token the API answers ${r.status} with ${r.headers.get('www-authenticate')}`);
  await page.goto(`${base}/#/overview`);
  await page.waitForSelector('#signin[open]', { timeout: TIMEOUT });
  const shown = await page.locator('#view [data-kpi]').count();
  check(shown === 0, `no figure is shown before the token is given (${shown} KPIs)`);
  await screenshot(page, 'token.png');
  await enterToken(page, `${TOKEN}-wrong`);
  const again = await page.waitForSelector('#signin[open][data-refused="1"]', { timeout: TIMEOUT }).then(() => true, () => false);
  check(again, 'a wrong token: the page asks again and says it was refused');
  await enterToken(page, TOKEN);
  await waitRendered(page, 0);
  const kpis = await page.locator('[data-kpi]').count();
  check(kpis === 6, `with the right token the overview shows its ${kpis} KPIs`);
  const stored = await page.evaluate(() => sessionStorage.getItem('cdrflow.apiToken'));
  check(stored === TOKEN, 'the token is kept in this tab\'s sessionStorage');
  drop401s();
  await checkClean(page, 'signed in');
});

// First, while records are flowing in.
await step('pipeline: live throughput, lag and rejects from /metrics', async () => {
  await open(page, '#/pipeline');
  // A rate needs two polls; traffic makes it non-zero. Three points make a line to see.
  const live = await page.waitForFunction(() => {
    const data = Chart.getChart(document.querySelector('[data-card="throughput"] canvas'))?.data.datasets[0].data;
    return data && data.length >= 3 && data.some((v) => v > 0);
  }, null, { timeout: TIMEOUT }).then(() => true, () => false);
  check(live, 'pipeline: the throughput chart shows records per second (needs records flowing in)');
  const rejects = await page.locator('[data-card="rejects"] canvas').count();
  check(rejects === 1, 'pipeline: rejects by reason drawn');
  const consumed = figure(await kpiText(page, 'consumed'));
  const metrics = await (await api.get(`${base}/api/metrics`)).text();
  const now = Number(metrics.match(/^cdrflow_records_consumed_total (\S+)$/m)?.[1]);
  check(consumed > 0 && consumed <= now, `pipeline: records consumed ${consumed} shown, /metrics says ${now} now`);
  const partitions = await page.locator('[data-card="stages"] tbody tr').count();
  check(partitions >= 5, `pipeline: stage and partition rows shown (${partitions})`);
  await checkCharts(page, 'pipeline', 4, ['lag']);
  await screenshot(page, 'pipeline.png');
  await checkClean(page, 'pipeline');
});

const PAGES = { overview: 3, revenue: 4, customers: 2, services: 3, billing: 1 };
for (const [name, atLeast] of Object.entries(PAGES)) {
  await step(`${name}: loads, charts drawn with data`, async () => {
    await open(page, `#/${name}`);
    await checkCharts(page, name, atLeast);
    const tables = await page.locator('#view table').count();
    check(tables >= 1, `${name}: ${tables} tables`);
    await screenshot(page, `${name}.png`);
    await checkClean(page, name);
  });
}

await step('overview: KPIs, and the hover and legend of a chart', async () => {
  await open(page, '#/overview');
  const kpis = await page.locator('[data-kpi]').count();
  check(kpis === 6, `overview: ${kpis} KPIs`);
  // Hover the first bar of the trend: a tooltip with a money value.
  const box = await page.locator('[data-card="trend"] canvas').boundingBox();
  const point = await page.evaluate(() => {
    const c = Chart.getChart(document.querySelector('[data-card="trend"] canvas'));
    const p = c.getDatasetMeta(0).data[0].getCenterPoint();
    return { x: p.x, y: p.y };
  });
  await page.mouse.move(box.x + point.x, box.y + point.y);
  const tip = await page.waitForFunction(() => {
    const c = Chart.getChart(document.querySelector('[data-card="trend"] canvas'));
    return c.tooltip.opacity > 0 && c.tooltip.body?.flatMap((b) => b.lines).join(' ');
  }, null, { timeout: 5000 }).then((h) => h.jsonValue(), () => null);
  check(tip && / MAD/.test(tip), `overview: hovering the trend shows the value (${tip})`);
  // Click the first legend entry: its dataset is hidden.
  const hit = await page.evaluate(() => {
    const c = Chart.getChart(document.querySelector('[data-card="trend"] canvas'));
    const b = c.legend.legendHitBoxes[0];
    return { x: b.left + b.width / 2, y: b.top + b.height / 2 };
  });
  await page.mouse.click(box.x + hit.x, box.y + hit.y);
  // Chart.js handles pointer events on the next animation frame.
  const hidden = await page.waitForFunction(
    () => !Chart.getChart(document.querySelector('[data-card="trend"] canvas')).isDatasetVisible(0),
    null, { timeout: 5000 },
  ).then(() => true, () => false);
  check(hidden, 'overview: clicking a legend entry hides its dataset');
  await checkClean(page, 'overview interactions');
});

await step('filters: service and region change the KPIs to what the API says', async () => {
  await open(page, `#/overview?period=${billed}`);
  const all = await kpiText(page, 'rated');
  const kpi = async (q) => (await getJSON(`/api/reports/kpis?${q}`)).rows[0];
  const whole = await kpi(`period=${billed}`);
  check(figure(all) === round2(whole.rated), `overview ${billed}: revenue ${all} is the API's ${whole.rated}`);
  await screenshot(page, 'overview-billed.png');

  let before = await renderCount(page);
  await page.selectOption('#f-service', 'voice');
  await waitRendered(page, before);
  const voice = await kpiText(page, 'rated');
  const api = await kpi(`period=${billed}&service=voice`);
  check(page.url().includes('service=voice'), `the hash keeps the filter (${page.url().split('#')[1]})`);
  check(voice !== all, `service=voice changes revenue: ${all} → ${voice}`);
  check(figure(voice) === round2(api.rated), `service=voice: revenue ${voice} is the API's ${api.rated}`);

  const region = filters.regions.find((r) => r !== 'unknown');
  before = await renderCount(page);
  await page.selectOption('#f-region', region);
  await waitRendered(page, before);
  const customers = await kpiText(page, 'customers');
  const apiRegion = await kpi(`period=${billed}&service=voice&region=${encodeURIComponent(region)}`);
  check(figure(customers) === Number(apiRegion.customers) && Number(apiRegion.customers) < Number(api.customers),
    `region=${region}: ${customers} active customers, the API's ${apiRegion.customers} (of ${api.customers})`);
  // Filters a report does not accept are not sent (the API would answer 400, caught below).
  await checkCharts(page, 'overview filtered', 2);
  await checkClean(page, 'filtered overview');

  // A shared link with filters opens with them selected.
  const shared = await desktop.newPage();
  watch(shared);
  await shared.goto(`${base}/#/revenue?period=${billed}&service=sms`);
  await signIn(shared);
  await waitRendered(shared, 0);
  drop401s();
  check(await shared.inputValue('#f-service') === 'sms' && await shared.inputValue('#f-period') === billed,
    'a link with filters opens with them selected');
  await shared.close();
  await checkClean(page, 'shared link');
});

await step('CSV: a report download is byte for byte the API\'s CSV', async () => {
  await open(page, `#/revenue?period=${billed}`);
  const link = page.locator('[data-card="revenue_by_region"] a[data-csv]');
  const href = await link.getAttribute('href');
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  const got = readFileSync(await download.path());
  const want = Buffer.from(await (await api.get(base + href)).body());
  check(href.includes(`period=${billed}`) && href.includes('format=csv'), `the CSV link carries the filters (${href})`);
  check(got.length > 0 && got.equals(want), `${download.suggestedFilename()}: ${got.length} bytes downloaded, identical to GET ${href} (${want.length} bytes)`);
  check(got.toString().startsWith('region,'), `the CSV starts with its header (${got.toString().split('\n')[0]})`);
  await checkClean(page, 'CSV download');
});

await step('billing: invoice CSV, and a PDF link serves a PDF', async () => {
  await open(page, `#/billing?period=${billed}`);
  const list = await getJSON(`/api/invoices?period=${billed}&limit=100000`);
  const link = page.locator('[data-card="invoices"] a[data-csv]');
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  const got = readFileSync(await download.path());
  const href = await link.getAttribute('href');
  const want = Buffer.from(await (await api.get(base + href)).body());
  check(got.length > 0 && got.equals(want), `invoice CSV: ${got.length} bytes downloaded, identical to GET ${href}`);
  const lines = got.toString().trimEnd().split('\n');
  check(lines.length === list.length + 1 && lines[1].startsWith(`${list[0].number},`),
    `invoice CSV: ${lines.length - 1} invoices, as /api/invoices lists (${list.length})`);
  const pdfLink = page.locator('[data-card="invoices"] a[data-pdf]').first();
  const pdf = await pdfLink.getAttribute('href');
  const [saved] = await Promise.all([page.waitForEvent('download'), pdfLink.click()]);
  const body = readFileSync(await saved.path());
  const r = await api.get(base + pdf);
  check(r.status() === 200 && r.headers()['content-type'] === 'application/pdf' && body.subarray(0, 4).toString() === '%PDF'
    && body.equals(Buffer.from(await r.body())) && saved.suggestedFilename().endsWith('.pdf'),
    `${pdf}: the link saves ${saved.suggestedFilename()}, ${body.length} bytes starting ${JSON.stringify(body.subarray(0, 5).toString())}, the API's PDF`);
  await checkClean(page, 'billing');
});

await step('drill-down: region → customer → invoice → event explanation', async () => {
  await open(page, '#/revenue');
  const regionLink = page.locator('[data-card="revenue_by_region"] table a[href*="#/region/"]').first();
  const region = await regionLink.innerText();
  let before = await renderCount(page);
  await regionLink.click();
  await waitRendered(page, before);
  check(decodeURIComponent(page.url()).includes(`#/region/${region}`), `region page of ${region}`);
  check((await page.locator('h1').innerText()) === region, `the region page is titled ${region}`);
  await checkCharts(page, 'region', 2);
  const customers = page.locator('[data-card="top_customers"] table a[href*="#/customer/"]');
  const count = await customers.count();
  check(count > 0, `region ${region}: ${count} customer links`);
  await screenshot(page, 'region.png');
  await checkClean(page, 'region');

  // The first customer of the region with an invoice.
  let invoice = null;
  for (let i = 0; i < Math.min(count, 10) && !invoice; i += 1) {
    const href = await customers.nth(i).getAttribute('href');
    before = await renderCount(page);
    if (i === 0) await customers.nth(0).click();
    else await page.evaluate((h) => { location.hash = h; }, href);
    await waitRendered(page, before);
    const link = page.locator('[data-card="customer-invoices"] a[href*="#/invoice/"]');
    if (await link.count()) invoice = link.first();
  }
  check(invoice !== null, 'a customer of the region has an invoice');
  const allowances = await page.locator('[data-allowance]').count();
  check(allowances > 0, `customer: ${allowances} allowances shown with what is left`);
  const mtd = await page.locator('[data-card="usage"] dd').first().innerText();
  check(/^\d{4}-\d{2}$/.test(mtd), `customer: month to date of ${mtd}`);
  await checkCharts(page, 'customer', 1);
  await screenshot(page, 'customer.png');
  await checkClean(page, 'customer');

  const number = await invoice.innerText();
  before = await renderCount(page);
  await invoice.click();
  await waitRendered(page, before);
  const json = await getJSON(`/api/invoices/${number}.json`);
  const lines = await page.locator('[data-card="invoice-lines"] tbody tr').count();
  check(lines === json.lines.length, `invoice ${number}: ${lines} lines shown, the document has ${json.lines.length}`);
  const total = await page.locator(`[data-total]`).innerText();
  check(figure(total.split('\n').pop()) === round2(json.total), `invoice ${number}: total ${total.replace(/\s+/g, ' ')} is the document's ${json.total}`);
  const events = page.locator('[data-card="invoice-events"] a[href*="#/event/"]');
  check(await events.count() > 0, `invoice ${number}: the events of its period are listed`);
  await screenshot(page, 'invoice.png');
  await checkClean(page, 'invoice');

  const recordId = await events.first().innerText();
  before = await renderCount(page);
  await events.first().click();
  await waitRendered(page, before);
  const text = await page.locator('pre.explain').innerText();
  check(text.includes('Rating') && text.includes(recordId), `event ${recordId}: the explanation shows its rating`);
  await screenshot(page, 'event.png');
  await checkClean(page, 'event');
});

await step('phone width: the overview is readable at 390 px', async () => {
  const phone = await browser.newContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, reducedMotion: 'reduce',
  });
  const p = await phone.newPage();
  watch(p);
  await p.goto(`${base}/#/overview`);
  await signIn(p);
  await waitRendered(p, 0);
  drop401s();
  const widths = await p.evaluate(() => ({ page: document.documentElement.scrollWidth, view: innerWidth }));
  check(widths.page <= widths.view, `no sideways scrolling: the page is ${widths.page} px wide in ${widths.view}`);
  const nav = await p.locator('#nav').boundingBox();
  check(nav.x >= 0 && nav.x + nav.width <= 390, 'the navigation fits the width');
  await checkCharts(p, 'phone overview', 2);
  await p.screenshot({ path: join(shots, 'overview-phone.png'), fullPage: true });
  await checkClean(p, 'phone overview');
  await phone.close();
});

await browser.close();
const seconds = ((Date.now() - started) / 1000).toFixed(1);
if (failures.length) {
  console.error(`\n${failures.length} of ${checks} checks failed (${seconds} s):\n- ${failures.join('\n- ')}`);
  process.exit(1);
}
console.log(`\nAll ${checks} checks passed in ${seconds} s; screenshots in ${shots}`);
