// cdrflow dashboard: a hash-routed single page drawn from the daemon's own API.
//
// Routes are `#/PAGE[/ARG][?FILTERS]`: the filters live in the hash so that any view,
// drill-downs included, is a link one can share. Every figure comes from an API answer:
// reports (`/api/reports/NAME`, sent only the filters that report accepts, as
// `/api/reports` lists them), the drill-down API, and `/api/metrics` for the live
// pipeline. A daemon with an API token answers 401 until the page sends it: the page then
// asks for it once, keeps it in sessionStorage (this tab only) and sends it on every call;
// CSV, PDF and JSON links are fetched with it too and saved from the answer.
// Money arrives as exact decimal strings; it is parsed to a float only to size a chart,
// and shown by rounding the string itself.
'use strict';

const CURRENCY = 'MAD';
const FILTERS = ['period', 'service', 'region', 'plan'];
const PAGES = {
  overview: overviewPage,
  revenue: revenuePage,
  customers: customersPage,
  services: servicesPage,
  billing: billingPage,
  pipeline: pipelinePage,
  region: regionPage,
  customer: customerPage,
  invoice: invoicePage,
  event: eventPage,
};
// The page each drill-down view belongs to, for the navigation highlight.
const SECTION = { region: 'revenue', customer: 'customers', invoice: 'billing', event: 'billing' };
const PALETTE = ['#2563eb', '#0891b2', '#7c3aed', '#16a34a', '#f59e0b', '#dc2626',
  '#db2777', '#65a30d', '#ea580c', '#0d9488', '#4f46e5', '#a16207', '#475569'];
const SERVICE_COLOURS = { voice: '#2563eb', sms: '#16a34a', data: '#f59e0b' };
// Report columns holding money, percentages, and labels that read better than the name.
const MONEY = new Set(['rated', 'cost', 'margin', 'billed', 'billed_total', 'average_invoice',
  'arpu', 'billed_arpu', 'monetary', 'avg_monetary', 'amount', 'billed_amount', 'pending_amount',
  'subtotal', 'vat', 'total', 'price', 'credit', 'credit_limit']);
const LABELS = {
  customer_id: 'Customer', msisdn: 'MSISDN', arpu: 'ARPU', billed_arpu: 'Billed ARPU',
  billed_total: 'Billed incl. VAT', average_invoice: 'Average invoice', margin_pct: 'Margin %',
  share_pct: 'Share %', reject_rate_pct: 'Reject rate %', records_consumed: 'Records consumed',
  records_rejected: 'Records rejected', avg_recency_days: 'Avg recency (days)',
  avg_frequency: 'Avg frequency', avg_monetary: 'Avg monetary', recency_days: 'Recency (days)',
  last_event: 'Last event', rfm: 'RFM', r: 'R', f: 'F', m: 'M', vat: 'VAT',
  billed_events: 'Billed events', billed_amount: 'Billed amount',
  pending_events: 'Pending events', pending_amount: 'Pending amount', record_id: 'Record',
  unverified_peers: 'Unverified peers',
};
const WEEKDAYS = ['', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
const POLL_MS = 3000;

const state = {
  catalog: null, // report name → its entry in /api/reports (filters, latest_by_default)
  options: null, // /api/filters
  filters: {}, // the filters in the hash
  route: null,
  charts: [],
  unborn: [], // charts whose canvas is not in the page yet
  timers: [],
  token: 0, // the render in progress; older renders' answers are dropped
  pending: 0,
  used: new Set(), // filters the current page sends somewhere
  refreshed: null,
};

// ---------------------------------------------------------------- formatting

const intFormat = new Intl.NumberFormat('en-US');

function group(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

// An exact decimal string rounded half away from zero to `places`, with thousands
// separators; no float is involved.
function decimal(value, places = 2) {
  if (value === null || value === undefined || value === '') return '—';
  let s = String(value).trim();
  const negative = s.startsWith('-');
  if (negative || s.startsWith('+')) s = s.slice(1);
  if (!/^\d*(\.\d*)?$/.test(s)) return String(value);
  const [whole = '', frac = ''] = s.split('.');
  const padded = (frac + '0'.repeat(places + 1)).slice(0, places + 1);
  const scale = 10n ** BigInt(places);
  let units = BigInt(whole || '0') * scale + BigInt(padded.slice(0, places) || '0');
  if (padded[places] >= '5') units += 1n;
  const int = (units / scale).toString();
  const rest = places ? '.' + (units % scale).toString().padStart(places, '0') : '';
  return (negative && units !== 0n ? '-' : '') + group(int) + rest;
}

function money(value, currency = CURRENCY) {
  return value === null || value === undefined ? '—' : `${decimal(value)} ${currency}`;
}

function integer(value) {
  return value === null || value === undefined ? '—' : intFormat.format(Number(value));
}

function pct(value) {
  return value === null || value === undefined ? '—' : `${decimal(value)} %`;
}

function num(value) {
  return value === null || value === undefined ? null : parseFloat(value);
}

function label(name) {
  return LABELS[name] || (name.charAt(0).toUpperCase() + name.slice(1)).replace(/_/g, ' ');
}

function monthOf(date) {
  return String(date).slice(0, 7);
}

function when(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
}

// ---------------------------------------------------------------- DOM

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// A money value: the figure, then the currency in a quieter style.
function moneyNode(value, currency = CURRENCY) {
  if (value === null || value === undefined) return document.createTextNode('—');
  return h('span', { class: 'money' }, decimal(value), ' ', h('span', { class: 'cur' }, currency));
}

// ---------------------------------------------------------------- routing

function parseHash() {
  const raw = location.hash.replace(/^#/, '');
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const filters = {};
  for (const f of FILTERS) if (params.get(f)) filters[f] = params.get(f);
  return { page: parts[0] || 'overview', arg: parts[1], filters };
}

function filterQuery(filters) {
  const q = new URLSearchParams();
  for (const f of FILTERS) if (filters[f]) q.set(f, filters[f]);
  return q.toString();
}

// A link to a view, carrying the current filters (or `filters`).
function link(path, filters = state.filters) {
  const q = filterQuery(filters);
  return '#' + path + (q ? '?' + q : '');
}

function regionLink(name) { return link(`/region/${encodeURIComponent(name)}`); }
function customerLink(id) { return link(`/customer/${encodeURIComponent(id)}`); }
function invoiceLink(number) { return link(`/invoice/${encodeURIComponent(number)}`); }
function eventLink(id) { return link(`/event/${encodeURIComponent(id)}`); }

// ---------------------------------------------------------------- API

const TOKEN_KEY = 'cdrflow.apiToken';
let asking = null; // the open token prompt, shared by every call that got 401

function apiToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch (_) {
    return '';
  }
}

// Resolves once a token has been entered. `refused`: the one sent was turned down.
function askToken(refused) {
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const dialog = document.getElementById('signin');
    const input = document.getElementById('signin-token');
    document.getElementById('signin-note').textContent = refused
      ? 'The daemon refused this token. Enter the API token again.'
      : 'This daemon serves its data to holders of its API token only.';
    dialog.dataset.refused = refused ? '1' : '0';
    input.value = '';
    dialog.querySelector('form').onsubmit = (ev) => {
      ev.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      try {
        sessionStorage.setItem(TOKEN_KEY, token);
      } catch (_) {
        // Storage disabled: the token is asked for again on the next call.
      }
      dialog.close();
      asking = null;
      resolve();
    };
    // Without the token there is nothing to show: Escape does not dismiss the prompt.
    dialog.oncancel = (ev) => ev.preventDefault();
    dialog.showModal();
    input.focus();
  });
  return asking;
}

// fetch() of an API path with the tab's token; on 401, ask for the token and try again.
async function apiFetch(url, init = {}) {
  for (;;) {
    const sent = apiToken();
    const headers = new Headers(init.headers || {});
    if (sent) headers.set('Authorization', `Bearer ${sent}`);
    const r = await fetch(url, { ...init, headers });
    if (r.status !== 401) return r;
    // A token entered while this call was under way is tried before asking again.
    if (apiToken() !== sent) continue;
    await askToken(sent !== '');
  }
}

// A link into the API (CSV, invoice PDF or JSON) cannot carry the token: it is fetched
// here and the answer saved under the name the daemon gives it.
async function saveAPILink(a) {
  const href = a.getAttribute('href');
  const r = await apiFetch(href);
  if (!r.ok) throw new Error(`${href}: ${r.status} ${r.statusText}`);
  const named = /filename="([^"]+)"/.exec(r.headers.get('Content-Disposition') || '');
  const name = named ? named[1] : href.split('?')[0].split('/').pop();
  const url = URL.createObjectURL(await r.blob());
  const save = h('a', { href: url, download: name, hidden: '' });
  document.body.append(save);
  save.click();
  save.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

document.addEventListener('click', (ev) => {
  const a = ev.target instanceof Element && ev.target.closest('a[download][href^="/api/"]');
  if (!a) return;
  ev.preventDefault();
  saveAPILink(a).catch((e) => {
    a.title = e.message;
    a.classList.add('failed');
  });
});

async function getJSON(url) {
  const r = await apiFetch(url, { headers: { Accept: 'application/json' } });
  const text = await r.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch (_) {
    // Reported below with the status.
  }
  if (!r.ok) throw new Error(`${url}: ${(body && body.error) || `${r.status} ${r.statusText}`}`);
  if (body === null) throw new Error(`${url}: the answer is not JSON`);
  return body;
}

// The URL of a report with the current filters it accepts; `extra` overrides them (a
// null drops one, as trend charts drop the period).
function reportURL(name, extra = {}, format) {
  const entry = state.catalog.get(name);
  if (!entry) throw new Error(`the daemon has no report ${name}`);
  const accepted = entry.filters;
  const values = { ...state.filters, ...extra };
  const q = new URLSearchParams();
  for (const f of accepted) {
    // A filter the view fixes itself (a trend's period, a region page's region) is not
    // the filter bar's.
    if (FILTERS.includes(f) && !(f in extra)) state.used.add(f);
    if (values[f] === null || values[f] === undefined || values[f] === '') continue;
    q.set(f, values[f]);
  }
  if (format) q.set('format', format);
  const qs = q.toString();
  return `/api/reports/${name}${qs ? '?' + qs : ''}`;
}

async function report(name, extra = {}) {
  const r = await getJSON(reportURL(name, extra));
  if (r.refreshed_at && (!state.refreshed || r.refreshed_at < state.refreshed)) {
    state.refreshed = r.refreshed_at;
    showFreshness();
  }
  return r;
}

function latestPeriod() {
  const periods = [...(state.options.periods || [])].sort();
  return periods.length ? periods[periods.length - 1] : null;
}

// The period a month-to-date view shows: the filter's, else the latest with usage.
function currentPeriod() {
  state.used.add('period');
  return state.filters.period || latestPeriod();
}

// What period a report answers for with these filters: the one asked, else the latest
// for reports that default to it, else all of them.
function scope(name, extra = {}) {
  const entry = state.catalog.get(name);
  if (!entry || !entry.filters.includes('period')) return null;
  const period = 'period' in extra ? extra.period : state.filters.period;
  if (period) return period;
  return entry.latest_by_default ? latestPeriod() : 'all periods';
}

// ---------------------------------------------------------------- page scaffolding

// Track one piece of asynchronous work of the current render; when the last settles,
// `main[data-ready]` says so (the browser tests wait for it).
function track(promise, where) {
  const token = state.token;
  state.pending += 1;
  return promise
    .catch((e) => {
      if (token !== state.token) return;
      if (where) {
        where.replaceChildren(h('div', { class: 'error', role: 'alert' }, e.message || String(e)));
      }
    })
    .finally(() => {
      if (token !== state.token) return;
      state.pending -= 1;
      if (state.pending === 0) document.getElementById('view').dataset.ready = '1';
    });
}

function pageHead(title, sub, crumbs) {
  return h('div', {},
    crumbs ? h('div', { class: 'crumbs' }, crumbs.map(([text, href]) => h('span', {}, href ? h('a', { href }, text) : text))) : null,
    h('div', { class: 'page-head' }, h('h1', {}, title), sub ? h('span', { class: 'sub' }, sub) : null));
}

// A card whose body `fill(body, actions)` draws; an error replaces the body.
function card(parent, title, fill, opts = {}) {
  const body = h('div', { class: 'body' }, h('div', { class: 'loading' }, 'Loading…'));
  const actions = h('div', { class: 'actions' });
  const note = [opts.report ? scope(...opts.report) : null, opts.note].filter(Boolean).join(' · ');
  const el = h('section', { class: 'card' + (opts.wide ? ' wide' : ''), 'aria-label': title, 'data-card': opts.id || null },
    h('header', {}, h('h2', {}, title, note ? h('span', { class: 'note' }, note) : null), actions),
    body);
  parent.append(el);
  track((async () => {
    const token = state.token;
    const nodes = document.createDocumentFragment();
    await fill(nodes, actions);
    if (token !== state.token) return;
    body.replaceChildren(nodes);
    flushCharts();
  })(), body);
  return el;
}

function csvLink(actions, href, what) {
  actions.append(h('a', { class: 'chip', href, download: '', 'data-csv': what || '' }, 'CSV'));
}

function empty(text = 'No data for these filters.') {
  return h('div', { class: 'empty' }, text);
}

// ---------------------------------------------------------------- tables

// columns: [{key, label, type ('money'|'int'|'pct'|'num'|'text'), href(row), cell(row)}]
function table(columns, rows, opts = {}) {
  const pageSize = opts.pageSize || 25;
  let shown = pageSize;
  let sortKey = null;
  let sortDir = 1;
  const thead = h('thead');
  const tbody = h('tbody');
  const isNum = (c) => ['money', 'int', 'pct', 'num'].includes(c.type);
  const wrap = h('div', { class: 'table-wrap' }, h('table', {}, thead, tbody));
  const more = h('div', { class: 'more' });

  function value(row, c) {
    const v = row[c.key];
    if (isNum(c)) return v === null || v === undefined ? -Infinity : parseFloat(v);
    return v === null || v === undefined ? '' : String(v);
  }

  function cell(row, c) {
    if (c.cell) return c.cell(row);
    const v = row[c.key];
    let content;
    switch (c.type) {
      case 'money': content = moneyNode(v, opts.currency); break;
      case 'int': content = integer(v); break;
      case 'pct': content = v === null || v === undefined ? '—' : decimal(v); break;
      case 'num': content = v === null || v === undefined ? '—' : decimal(v); break;
      default: content = v === null || v === undefined ? '—' : String(v);
    }
    const href = c.href && v !== null && v !== undefined ? c.href(row) : null;
    return href ? h('a', { href }, content) : content;
  }

  function draw() {
    thead.replaceChildren(h('tr', {}, columns.map((c) => h('th', {
      class: isNum(c) ? 'num' : null,
      scope: 'col',
      'aria-sort': sortKey === c.key ? (sortDir > 0 ? 'ascending' : 'descending') : null,
    }, h('button', { type: 'button', onclick: () => sortBy(c) }, c.label || label(c.key))))));
    let list = rows;
    if (sortKey) {
      const c = columns.find((x) => x.key === sortKey);
      list = [...rows].sort((a, b) => {
        const x = value(a, c);
        const y = value(b, c);
        return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
      });
    }
    tbody.replaceChildren(...list.slice(0, shown).map((row) => h('tr', {},
      columns.map((c) => h('td', { class: isNum(c) ? 'num' : null }, cell(row, c))))));
    more.replaceChildren();
    if (rows.length > shown) {
      more.append(`Showing ${shown} of ${intFormat.format(rows.length)} rows.`,
        h('button', { type: 'button', class: 'chip', onclick: () => { shown = rows.length; draw(); } }, 'Show all'));
    }
  }

  function sortBy(c) {
    if (sortKey === c.key) sortDir = -sortDir;
    else { sortKey = c.key; sortDir = isNum(c) ? -1 : 1; }
    draw();
  }

  draw();
  return h('div', {}, wrap, more);
}

// The columns of a report answer, typed from its column types and names.
function reportColumns(r, links = {}) {
  return r.columns.map((c) => {
    if (c.type === 'timestamp') return { key: c.name, cell: (row) => when(row[c.name]) };
    let type = 'text';
    if (c.type === 'integer') type = 'int';
    else if (c.type === 'decimal') type = MONEY.has(c.name) ? 'money' : c.name.endsWith('_pct') ? 'pct' : 'num';
    return { key: c.name, type, href: links[c.name] };
  });
}

const REPORT_LINKS = {
  region: (row) => regionLink(row.region),
  customer_id: (row) => customerLink(row.customer_id),
  name: (row) => (row.customer_id !== undefined ? customerLink(row.customer_id) : null),
};

// A card with a report's table and its CSV link.
function reportTable(parent, title, name, extra = {}, opts = {}) {
  return card(parent, title, async (body, actions) => {
    const r = await report(name, extra);
    csvLink(actions, reportURL(name, extra, 'csv'), name);
    body.append(r.rows.length ? table(reportColumns(r, REPORT_LINKS), r.rows, opts) : empty());
  }, { wide: opts.wide !== false, id: name, note: opts.note, report: [name, extra] });
}

// ---------------------------------------------------------------- charts

// A chart in a box of the CSS height. Chart.js measures the box, so a chart drawn into a
// card body still being built is made when `flushCharts` finds it in the page; the
// instance is then `box.chart`.
function chartBox(parent, config, size) {
  const canvas = h('canvas', { role: 'img', 'aria-label': config.label || 'chart' });
  const box = h('div', { class: 'chart' + (size ? ' ' + size : '') }, canvas);
  parent.append(box);
  state.unborn.push({ box, canvas, config });
  flushCharts();
  return box;
}

function flushCharts() {
  state.unborn = state.unborn.filter(({ box, canvas, config }) => {
    if (!canvas.isConnected) return true;
    box.chart = new Chart(canvas, config);
    state.charts.push(box.chart);
    return false;
  });
}

// Bars and lines: the value of the value axis, as money.
function moneyTooltip(ctx) {
  const v = ctx.chart.options.indexAxis === 'y' ? ctx.parsed.x : ctx.parsed.y;
  return `${ctx.dataset.label}: ${decimal(v.toFixed(2))} ${CURRENCY}`;
}

function axisMoney(v) {
  return intFormat.format(v);
}

// Category labels longer than a phone can show are cut; the tooltip has them whole.
function shortLabel(value) {
  const text = this.getLabelForValue(value);
  return matchMedia('(max-width: 700px)').matches && text.length > 16 ? `${text.slice(0, 15)}…` : text;
}

function barConfig(labels, datasets, opts = {}) {
  return {
    type: 'bar',
    label: opts.label,
    data: { labels, datasets },
    options: {
      indexAxis: opts.horizontal ? 'y' : undefined,
      maintainAspectRatio: false,
      onClick: opts.onClick,
      onHover: opts.onClick ? (e, els) => { e.native.target.style.cursor = els.length ? 'pointer' : 'default'; } : undefined,
      plugins: {
        legend: { display: datasets.length > 1, position: 'bottom' },
        tooltip: { callbacks: { label: opts.money === false ? undefined : moneyTooltip } },
      },
      scales: {
        [opts.horizontal ? 'x' : 'y']: { beginAtZero: true, stacked: opts.stacked, ticks: { callback: axisMoney } },
        [opts.horizontal ? 'y' : 'x']: { stacked: opts.stacked, grid: { display: false }, ticks: { callback: shortLabel } },
      },
    },
  };
}

function lineConfig(labels, datasets, opts = {}) {
  return {
    type: 'line',
    label: opts.label,
    data: { labels, datasets: datasets.map((d, i) => ({ borderColor: PALETTE[i % PALETTE.length], backgroundColor: PALETTE[i % PALETTE.length], tension: 0.25, pointRadius: 3, borderWidth: 2, ...d })) },
    options: {
      maintainAspectRatio: false,
      interaction: { mode: 'index', intersect: false },
      plugins: {
        legend: { position: 'bottom' },
        tooltip: { callbacks: { label: opts.money ? moneyTooltip : undefined } },
      },
      scales: {
        y: { beginAtZero: true, ticks: { callback: axisMoney } },
        x: { grid: { display: false } },
      },
    },
  };
}

function doughnutConfig(labels, values, colours, opts = {}) {
  return {
    type: 'doughnut',
    label: opts.label,
    data: { labels, datasets: [{ label: opts.series || 'Share', data: values, backgroundColor: colours, borderWidth: 2, borderColor: '#fff' }] },
    options: {
      maintainAspectRatio: false,
      cutout: '58%',
      plugins: {
        legend: { position: matchMedia('(max-width: 700px)').matches ? 'bottom' : 'right' },
        tooltip: {
          callbacks: {
            label: (ctx) => {
              const total = ctx.dataset.data.reduce((a, b) => a + b, 0);
              const share = total ? ` (${(100 * ctx.parsed / total).toFixed(1)} %)` : '';
              return `${ctx.label}: ${opts.money === false ? intFormat.format(ctx.parsed) : `${decimal(String(ctx.parsed))} ${CURRENCY}`}${share}`;
            },
          },
        },
      },
    },
  };
}

function colourOf(i, key) {
  return SERVICE_COLOURS[key] || PALETTE[i % PALETTE.length];
}

// ---------------------------------------------------------------- KPIs

function kpi(name, title, value, sub) {
  return h('div', { class: 'kpi', 'data-kpi': name },
    h('div', { class: 'label' }, title),
    h('div', { class: 'value' }, value),
    sub ? h('div', { class: 'sub' }, sub) : null);
}

function kpiRow(parent, extra = {}) {
  const row = h('div', { class: 'kpis', 'aria-label': 'Key figures' }, h('div', { class: 'loading' }, 'Loading…'));
  parent.append(h('h2', { class: 'section' }, 'Key figures', h('span', { class: 'note' }, scope('kpis', extra))), row);
  track((async () => {
    const token = state.token;
    const r = await report('kpis', extra);
    if (token !== state.token) return;
    const k = r.rows[0] || {};
    row.replaceChildren(
      kpi('rated', 'Revenue (rated)', moneyNode(k.rated),
        `${k.billed == null ? 'Not invoiced yet' : `Billed ${money(k.billed)}`} · cost ${money(k.cost)}`),
      kpi('customers', 'Active customers', integer(k.customers), `${integer(k.events)} rated events`),
      kpi('invoices', 'Invoices', integer(k.invoices),
        k.billed_total == null ? 'None issued' : `${money(k.billed_total)} incl. VAT`),
      kpi('average_invoice', 'Average invoice', moneyNode(k.average_invoice),
        k.average_invoice == null && k.invoices ? 'Not by service' : 'Total incl. VAT per invoice'),
      kpi('records_consumed', 'Records processed', integer(k.records_consumed), `${integer(k.records_rejected)} rejected · since the start`),
      kpi('reject_rate_pct', 'Reject rate', pct(k.reject_rate_pct), 'Rejected / consumed, since the start'),
    );
  })(), row);
}

// ---------------------------------------------------------------- pages

function overviewPage(view) {
  view.append(pageHead('Overview', 'Revenue, customers, invoices and the pipeline at a glance'));
  kpiRow(view);
  const grid = h('div', { class: 'grid' });
  view.append(grid);
  card(grid, 'Revenue trend', async (body) => {
    const r = await report('revenue_by_month', { period: null });
    if (!r.rows.length) return body.append(empty());
    chartBox(body, barConfig(r.rows.map((x) => x.period), [
      { label: 'Rated', data: r.rows.map((x) => num(x.rated)), backgroundColor: PALETTE[0] },
      { label: 'Billed', data: r.rows.map((x) => num(x.billed)), backgroundColor: PALETTE[1] },
      { label: 'Margin', data: r.rows.map((x) => num(x.margin)), backgroundColor: PALETTE[3] },
    ], { label: 'Revenue by month' }));
  }, { id: 'trend', report: ['revenue_by_month', { period: null }] });
  card(grid, 'Service mix', async (body) => {
    const r = await report('revenue_by_service');
    if (!r.rows.length) return body.append(empty());
    chartBox(body, doughnutConfig(r.rows.map((x) => x.service), r.rows.map((x) => num(x.rated)),
      r.rows.map((x, i) => colourOf(i, x.service)), { label: 'Rated revenue by service', series: 'Rated' }));
  }, { id: 'service-mix', note: 'rated revenue', report: ['revenue_by_service'] });
  card(grid, 'Revenue by region', async (body) => {
    const r = await report('revenue_by_region');
    if (!r.rows.length) return body.append(empty());
    const regions = r.rows.map((x) => x.region);
    chartBox(body, barConfig(regions, [
      { label: 'Rated', data: r.rows.map((x) => num(x.rated)), backgroundColor: PALETTE[0] },
    ], {
      label: 'Rated revenue by region',
      horizontal: true,
      onClick: (e, els) => { if (els.length) location.hash = regionLink(regions[els[0].index]); },
    }));
  }, { id: 'overview-regions', note: 'click a region for its customers', report: ['revenue_by_region'] });
  card(grid, 'Top customers', async (body, actions) => {
    const r = await report('top_customers', { limit: 8 });
    csvLink(actions, reportURL('top_customers', { limit: 8 }, 'csv'), 'top_customers');
    if (!r.rows.length) return body.append(empty());
    body.append(table([
      { key: 'name', label: 'Customer', href: (x) => customerLink(x.customer_id) },
      { key: 'region', href: (x) => regionLink(x.region) }, { key: 'plan' },
      { key: 'events', type: 'int' }, { key: 'rated', type: 'money' },
    ], r.rows));
  }, { id: 'overview-top', note: 'by rated revenue', report: ['top_customers'] });
  reportTable(grid, 'Monthly summary', 'revenue_by_month', { period: null });
}

function revenuePage(view) {
  view.append(pageHead('Revenue', 'By region, plan and month; ARPU'));
  const grid = h('div', { class: 'grid' });
  view.append(grid);
  card(grid, 'Revenue by region', async (body, actions) => {
    const r = await report('revenue_by_region');
    csvLink(actions, reportURL('revenue_by_region', {}, 'csv'), 'revenue_by_region');
    if (!r.rows.length) return body.append(empty());
    const regions = r.rows.map((x) => x.region);
    chartBox(body, barConfig(regions, [
      { label: 'Rated', data: r.rows.map((x) => num(x.rated)), backgroundColor: PALETTE[0] },
      { label: 'Billed', data: r.rows.map((x) => num(x.billed)), backgroundColor: PALETTE[1] },
    ], {
      label: 'Revenue by region',
      horizontal: true,
      onClick: (e, els) => { if (els.length) location.hash = regionLink(regions[els[0].index]); },
    }), 'tall');
    body.append(h('p', { class: 'muted' }, 'Click a region to see its customers.'));
    body.append(table(reportColumns(r, REPORT_LINKS), r.rows, { pageSize: 50 }));
  }, { wide: true, id: 'revenue_by_region', report: ['revenue_by_region'] });
  card(grid, 'ARPU by month', async (body) => {
    const r = await report('arpu', { period: null });
    if (!r.rows.length) return body.append(empty());
    chartBox(body, lineConfig(r.rows.map((x) => x.period), [
      { label: 'ARPU (rated / customers)', data: r.rows.map((x) => num(x.arpu)) },
      { label: 'Billed ARPU (billed / invoices)', data: r.rows.map((x) => num(x.billed_arpu)) },
    ], { money: true, label: 'ARPU by month' }));
  }, { id: 'arpu', report: ['arpu', { period: null }] });
  card(grid, 'Monthly revenue per region', async (body) => {
    const r = await report('revenue_by_region_month', { period: null });
    if (!r.rows.length) return body.append(empty());
    const periods = [...new Set(r.rows.map((x) => x.period))].sort();
    const regions = [...new Set(r.rows.map((x) => x.region))].sort();
    const at = new Map(r.rows.map((x) => [`${x.region}|${x.period}`, num(x.rated)]));
    chartBox(body, lineConfig(periods, regions.map((region) => ({
      label: region, data: periods.map((p) => at.get(`${region}|${p}`) ?? 0),
    })), { money: true, label: 'Monthly revenue per region' }));
  }, { id: 'revenue_by_region_month', note: 'click a legend entry to hide it', report: ['revenue_by_region_month', { period: null }] });
  reportTable(grid, 'ARPU', 'arpu', { period: null });
  card(grid, 'Revenue by plan', async (body, actions) => {
    const r = await report('revenue_by_plan');
    csvLink(actions, reportURL('revenue_by_plan', {}, 'csv'), 'revenue_by_plan');
    if (!r.rows.length) return body.append(empty());
    chartBox(body, barConfig(r.rows.map((x) => x.plan), [
      { label: 'Rated', data: r.rows.map((x) => num(x.rated)), backgroundColor: PALETTE[2] },
      { label: 'Billed', data: r.rows.map((x) => num(x.billed)), backgroundColor: PALETTE[1] },
    ], { label: 'Revenue by plan' }), 'short');
    body.append(table(reportColumns(r, REPORT_LINKS), r.rows));
  }, { wide: true, id: 'revenue_by_plan', report: ['revenue_by_plan'] });
}

function customersPage(view) {
  view.append(pageHead('Customers', 'RFM segments and the top customers'));
  const grid = h('div', { class: 'grid' });
  view.append(grid);
  card(grid, 'RFM segments', async (body, actions) => {
    const r = await report('rfm_segments');
    csvLink(actions, reportURL('rfm_segments', {}, 'csv'), 'rfm_segments');
    if (!r.rows.length) return body.append(empty());
    chartBox(body, doughnutConfig(r.rows.map((x) => x.segment), r.rows.map((x) => num(x.customers)),
      r.rows.map((_, i) => PALETTE[i % PALETTE.length]), { label: 'Customers by RFM segment', series: 'Customers', money: false }));
    body.append(table(reportColumns(r), r.rows));
  }, { id: 'rfm_segments', note: 'recency, frequency, monetary over 3 months', report: ['rfm_segments'] });
  card(grid, 'Top customers', async (body, actions) => {
    const extra = { limit: 20 };
    const r = await report('top_customers', extra);
    csvLink(actions, reportURL('top_customers', extra, 'csv'), 'top_customers');
    if (!r.rows.length) return body.append(empty());
    const top = r.rows.slice(0, 10);
    chartBox(body, barConfig(top.map((x) => x.name), [
      { label: 'Rated', data: top.map((x) => num(x.rated)), backgroundColor: PALETTE[0] },
      { label: 'Cost', data: top.map((x) => num(x.cost)), backgroundColor: PALETTE[5] },
    ], {
      label: 'Top 10 customers by rated revenue',
      horizontal: true,
      onClick: (e, els) => { if (els.length) location.hash = customerLink(top[els[0].index].customer_id); },
    }));
  }, { id: 'top_customers_chart', note: 'top 10, rated', report: ['top_customers'] });
  reportTable(grid, 'Top customers', 'top_customers', { limit: 100 });
  reportTable(grid, 'Customers by RFM score', 'rfm', { limit: 100 });
}

function servicesPage(view) {
  view.append(pageHead('Services', 'Profitability by service and zone, usage patterns'));
  const grid = h('div', { class: 'grid' });
  view.append(grid);
  card(grid, 'Profitability by service and zone', async (body, actions) => {
    const r = await report('service_profitability');
    csvLink(actions, reportURL('service_profitability', {}, 'csv'), 'service_profitability');
    if (!r.rows.length) return body.append(empty());
    const labels = r.rows.map((x) => `${x.service} · ${x.zone}`);
    chartBox(body, barConfig(labels, [
      { label: 'Margin', data: r.rows.map((x) => num(x.margin)), backgroundColor: PALETTE[3] },
      { label: 'Cost', data: r.rows.map((x) => num(x.cost)), backgroundColor: PALETTE[5] },
    ], { label: 'Margin and cost by service and zone', stacked: true }), 'tall');
    body.append(table(reportColumns(r), r.rows, { pageSize: 50 }));
  }, { wide: true, id: 'service_profitability', note: 'bar = rated = margin + cost', report: ['service_profitability'] });
  card(grid, 'Usage by hour of day', async (body) => {
    const r = await report('usage_by_hour');
    if (!r.rows.length) return body.append(empty());
    const hours = [...Array(24).keys()];
    const at = new Map(r.rows.map((x) => [`${x.weekday}|${x.hour}`, Number(x.events)]));
    const days = [...new Set(r.rows.map((x) => Number(x.weekday)))].sort((a, b) => a - b);
    chartBox(body, lineConfig(hours.map((x) => `${String(x).padStart(2, '0')}h`), days.map((d) => ({
      label: WEEKDAYS[d] || String(d), data: hours.map((x) => at.get(`${d}|${x}`) ?? 0), pointRadius: 1,
    })), { label: 'Events by hour, one line per weekday' }));
  }, { id: 'usage_by_hour', note: 'events, operator time', report: ['usage_by_hour'] });
  card(grid, 'Usage by technology', async (body) => {
    const r = await report('usage_by_technology');
    if (!r.rows.length) return body.append(empty());
    chartBox(body, doughnutConfig(r.rows.map((x) => x.technology), r.rows.map((x) => Number(x.events)),
      r.rows.map((_, i) => PALETTE[i % PALETTE.length]), { label: 'Events by technology', series: 'Events', money: false }));
  }, { id: 'usage_by_technology', note: 'events', report: ['usage_by_technology'] });
  reportTable(grid, 'Revenue by service', 'revenue_by_service');
  reportTable(grid, 'Usage by technology', 'usage_by_technology');
}

function invoiceColumns() {
  return [
    { key: 'number', label: 'Invoice', href: (x) => invoiceLink(x.number) },
    { key: 'customer_id', label: 'Customer', href: (x) => customerLink(x.customer_id) },
    { key: 'period', cell: (x) => monthOf(x.period) },
    { key: 'subtotal', type: 'money' },
    { key: 'vat', type: 'money' },
    { key: 'total', type: 'money' },
    { key: 'issued_at', label: 'Issued', cell: (x) => when(x.issued_at) },
    {
      key: 'documents',
      cell: (x) => h('span', { class: 'actions' },
        h('a', { class: 'chip', href: `/api/invoices/${encodeURIComponent(x.number)}.pdf`, download: '', 'data-pdf': x.number }, 'PDF'),
        h('a', { class: 'chip', href: `/api/invoices/${encodeURIComponent(x.number)}.json`, download: '', 'data-json': x.number }, 'JSON')),
    },
  ];
}

function billingPage(view) {
  view.append(pageHead('Billing', 'Invoices issued, amounts billed, late usage'));
  const grid = h('div', { class: 'grid' });
  view.append(grid);
  card(grid, 'Billed by month', async (body) => {
    const r = await report('revenue_by_month', { period: null });
    if (!r.rows.length) return body.append(empty());
    chartBox(body, barConfig(r.rows.map((x) => x.period), [
      { label: 'Billed (before VAT)', data: r.rows.map((x) => num(x.billed)), backgroundColor: PALETTE[0] },
      { label: 'Billed incl. VAT', data: r.rows.map((x) => num(x.billed_total)), backgroundColor: PALETTE[2] },
    ], { label: 'Billed by month' }));
  }, { id: 'billed', report: ['revenue_by_month', { period: null }] });
  card(grid, 'Late usage', async (body, actions) => {
    const r = await report('late_usage');
    csvLink(actions, reportURL('late_usage', {}, 'csv'), 'late_usage');
    if (!r.rows.length) return body.append(empty('No usage arrived after its month was invoiced.'));
    body.append(table(reportColumns(r), r.rows));
  }, { id: 'late_usage', note: 'usage of a closed month, billed on the next invoice', report: ['late_usage'] });
  card(grid, 'Invoices', async (body, actions) => {
    const period = state.filters.period;
    state.used.add('period');
    const q = new URLSearchParams({ limit: '100000' });
    if (period) q.set('period', period);
    const list = await getJSON(`/api/invoices?${q}`);
    if (!list.length) return body.append(empty('No invoices issued for this period.'));
    q.set('format', 'csv');
    csvLink(actions, `/api/invoices?${q}`, 'invoices');
    body.append(table(invoiceColumns(), list, { pageSize: 20 }));
  }, { wide: true, id: 'invoices', note: `${state.filters.period || 'all periods'} · in number order` });
}

// ---- pipeline: the daemon's own /metrics, polled

// Prometheus text format → [{name, labels, value}].
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : parseFloat(m[3]);
    out.push({ name: m[1], labels, value: v });
  }
  return out;
}

function metric(samples, name) {
  return samples.filter((s) => s.name === name);
}

function metricSum(samples, name) {
  return metric(samples, name).reduce((a, s) => a + s.value, 0);
}

function pipelinePage(view) {
  view.append(pageHead('Pipeline', `Live from the daemon's /metrics, every ${POLL_MS / 1000} s`));
  const kpis = h('div', { class: 'kpis', 'aria-label': 'Pipeline figures' }, h('div', { class: 'loading' }, 'Loading…'));
  view.append(kpis);
  const grid = h('div', { class: 'grid' });
  view.append(grid);
  const liveCard = (title, id, note) => {
    const body = h('div', { class: 'body' });
    grid.append(h('section', { class: 'card', 'aria-label': title, 'data-card': id },
      h('header', {}, h('h2', {}, title, h('span', { class: 'note' }, note))), body));
    return body;
  };
  // Throughput and lag over the last 60 polls; the charts hold these very arrays.
  const times = [];
  const throughput = [];
  const lagHistory = [];
  const liveLine = (label, data, colour, fill) => {
    const c = lineConfig(times, [{ label, data, borderColor: colour, backgroundColor: fill, fill: true, pointRadius: 2 }]);
    c.options.animation = false;
    c.options.plugins.legend.display = false;
    return c;
  };
  const rateBox = chartBox(liveCard('Throughput', 'throughput', 'records consumed per second'),
    liveLine('records/s', throughput, PALETTE[0], 'rgba(37,99,235,.12)'), 'short');
  const lagBox = chartBox(liveCard('Consumer lag', 'lag', 'records on the broker not yet committed'),
    liveLine('records', lagHistory, PALETTE[4], 'rgba(245,158,11,.15)'), 'short');
  const rejectsBody = liveCard('Rejects by reason', 'rejects', 'since the daemon started');
  const stagesBody = liveCard('Stages and partitions', 'stages', 'batches waiting in each mailbox, lag per partition');
  let rejectsBox = null;
  let previous = null;
  const token = state.token;

  async function poll() {
    const r = await apiFetch('/api/metrics');
    if (!r.ok) throw new Error(`/api/metrics: ${r.status} ${r.statusText}`);
    const samples = parseMetrics(await r.text());
    if (token !== state.token) return;
    const at = performance.now();
    const consumed = metricSum(samples, 'cdrflow_records_consumed_total');
    const accepted = metricSum(samples, 'cdrflow_records_accepted_total');
    const rejected = metric(samples, 'cdrflow_records_rejected_total');
    const rejectedTotal = rejected.reduce((a, x) => a + x.value, 0);
    const lag = metric(samples, 'cdrflow_consumer_lag')
      .sort((x, y) => Number(x.labels.partition) - Number(y.labels.partition));
    const lagTotal = lag.reduce((a, x) => a + x.value, 0);
    const rate = previous ? Math.max(0, (consumed - previous.consumed) / ((at - previous.at) / 1000)) : null;
    previous = { consumed, at };
    if (rate !== null) {
      times.push(new Date().toLocaleTimeString('en-GB'));
      throughput.push(Math.round(rate));
      lagHistory.push(lagTotal);
      if (times.length > 60) {
        times.shift();
        throughput.shift();
        lagHistory.shift();
      }
      rateBox.chart.update('none');
      lagBox.chart.update('none');
    }
    kpis.replaceChildren(
      kpi('consumed', 'Records consumed', integer(consumed), `${integer(accepted)} accepted`),
      kpi('throughput', 'Throughput', rate === null ? 'measuring…' : `${intFormat.format(Math.round(rate))} /s`, `over the last ${POLL_MS / 1000} s`),
      kpi('rejected', 'Rejected', integer(rejectedTotal), consumed ? `${(100 * rejectedTotal / consumed).toFixed(2)} % of consumed` : 'nothing consumed yet'),
      kpi('lag', 'Consumer lag', integer(lagTotal), `${lag.length} partition${lag.length === 1 ? '' : 's'} owned`),
      kpi('inflight', 'Batches in flight', integer(metricSum(samples, 'cdrflow_inflight_batches')), 'sent down, not yet acknowledged'),
      kpi('catalog', 'Catalog version', integer(metricSum(samples, 'cdrflow_catalog_version')), `${integer(metricSum(samples, 'cdrflow_invoices_issued_total'))} invoices issued by this process`),
    );
    // Every reason is exposed from the start at 0; the chart shows those that happened.
    const reasons = rejected.filter((x) => x.value > 0).sort((x, y) => y.value - x.value);
    if (!reasons.length) {
      rejectsBox = null;
      rejectsBody.replaceChildren(empty('No record rejected since the daemon started.'));
    } else if (!rejectsBox) {
      const c = barConfig(reasons.map((x) => x.labels.reason),
        [{ label: 'Records', data: reasons.map((x) => x.value), backgroundColor: PALETTE[5] }],
        { horizontal: true, money: false, label: 'Rejects by reason' });
      c.options.animation = false;
      rejectsBody.replaceChildren();
      rejectsBox = chartBox(rejectsBody, c, 'short');
    } else {
      const c = rejectsBox.chart;
      c.data.labels = reasons.map((x) => x.labels.reason);
      c.data.datasets[0].data = reasons.map((x) => x.value);
      c.update('none');
    }
    const depth = metric(samples, 'cdrflow_stage_queue_depth').map((x) => ({ stage: x.labels.stage, batches: x.value }));
    stagesBody.replaceChildren(h('div', { class: 'stack' },
      table([{ key: 'stage' }, { key: 'batches', label: 'Batches waiting', type: 'int' }], depth),
      lag.length
        ? table([{ key: 'partition' }, { key: 'lag', label: 'Lag (records)', type: 'int' }],
          lag.map((x) => ({ partition: x.labels.partition, lag: x.value })))
        : empty('No partition assigned to this instance.')));
  }

  // Ready after the first poll; the second comes after a second, for a first rate soon,
  // then every POLL_MS until the page changes.
  let ready;
  track(new Promise((resolve) => { ready = resolve; }), kpis);
  let polls = 0;
  const loop = () => poll()
    .catch((e) => {
      if (token === state.token) kpis.replaceChildren(h('div', { class: 'error', role: 'alert' }, e.message));
    })
    .finally(() => {
      ready();
      polls += 1;
      if (token === state.token) state.timers.push(setTimeout(loop, polls === 1 ? 1000 : POLL_MS));
    });
  loop();

  card(grid, 'Daily data quality', async (body, actions) => {
    const r = await report('data_quality');
    csvLink(actions, reportURL('data_quality', {}, 'csv'), 'data_quality');
    if (!r.rows.length) return body.append(empty());
    chartBox(body, barConfig(r.rows.map((x) => x.day), [
      { label: 'Accepted', data: r.rows.map((x) => Number(x.accepted)), backgroundColor: PALETTE[3] },
      { label: 'Duplicates', data: r.rows.map((x) => Number(x.duplicates)), backgroundColor: PALETTE[1] },
      { label: 'Suspense', data: r.rows.map((x) => Number(x.suspense)), backgroundColor: PALETTE[4] },
      { label: 'Rejected', data: r.rows.map((x) => Number(x.rejected)), backgroundColor: PALETTE[5] },
    ], { label: 'Records by outcome and day', stacked: true, money: false }));
    body.append(table(reportColumns(r), r.rows, { pageSize: 10 }));
  }, { wide: true, id: 'data_quality', note: 'as of the last refresh', report: ['data_quality'] });
  reportTable(grid, 'Rejects by reason', 'rejects_by_reason', {}, { note: 'as of the last refresh' });
}

// ---- drill-down

function regionPage(view, name) {
  view.append(pageHead(name, 'Region', [['Revenue', link('/revenue')], [name]]));
  const region = { region: name };
  kpiRow(view, region);
  const grid = h('div', { class: 'grid' });
  view.append(grid);
  card(grid, 'Revenue by month', async (body) => {
    const r = await report('revenue_by_month', { ...region, period: null });
    if (!r.rows.length) return body.append(empty());
    chartBox(body, barConfig(r.rows.map((x) => x.period), [
      { label: 'Rated', data: r.rows.map((x) => num(x.rated)), backgroundColor: PALETTE[0] },
      { label: 'Billed', data: r.rows.map((x) => num(x.billed)), backgroundColor: PALETTE[1] },
    ], { label: `Revenue by month, ${name}` }));
  }, { id: 'region-trend', report: ['revenue_by_month', { period: null }] });
  card(grid, 'Service mix', async (body) => {
    const r = await report('revenue_by_service', region);
    if (!r.rows.length) return body.append(empty());
    chartBox(body, doughnutConfig(r.rows.map((x) => x.service), r.rows.map((x) => num(x.rated)),
      r.rows.map((x, i) => colourOf(i, x.service)), { label: `Rated revenue by service, ${name}`, series: 'Rated' }));
  }, { id: 'region-services', note: 'rated revenue', report: ['revenue_by_service'] });
  reportTable(grid, 'Customers', 'top_customers', { ...region, limit: 100000 },
    { note: 'by rated revenue; open one for its usage and invoices', pageSize: 50 });
}

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
}

function meter(title, detail, percent) {
  const fill = h('div', { class: 'fill' + (percent >= 100 ? ' full' : percent >= 80 ? ' high' : '') });
  fill.style.width = `${Math.min(100, Math.max(0, percent)).toFixed(1)}%`;
  return h('div', { class: 'meter' },
    h('div', { class: 'row' }, h('strong', {}, title), h('span', {}, detail)),
    h('div', { class: 'bar', role: 'meter', 'aria-valuenow': percent.toFixed(1), 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-label': title }, fill));
}

function customerPage(view, id) {
  const head = h('div');
  view.append(head);
  head.append(pageHead(`Customer ${id}`, null, [['Customers', link('/customers')], [`Customer ${id}`]]));
  const period = currentPeriod();
  const base = `/api/customers/${encodeURIComponent(id)}`;
  const usage = period ? getJSON(`${base}/usage?period=${period}`) : Promise.resolve(null);
  usage.catch(() => {}); // each card that uses it reports the error
  const grid = h('div', { class: 'grid three' });
  view.append(grid);
  card(grid, 'Customer', async (body) => {
    const c = await getJSON(base);
    head.replaceChildren(pageHead(c.name, `Customer ${c.customer_id} · ${c.msisdn}`,
      [['Customers', link('/customers')], [c.region, regionLink(c.region)], [c.name]]));
    body.append(facts([
      ['Name', c.name], ['MSISDN', c.msisdn],
      ['Region', h('a', { href: regionLink(c.region) }, c.region)],
      ['Plan', c.plan], ['Student', c.student ? 'yes' : 'no'],
      ['Credit limit', moneyNode(c.credit_limit)], ['Active since', c.activated_on || '—'],
    ]));
  }, { id: 'customer' });
  card(grid, 'Month to date', async (body) => {
    const u = await usage;
    if (!u) return body.append(empty('No usage yet.'));
    const cur = u.currency || CURRENCY;
    body.append(facts([
      ['Period', u.period], ['Events', integer(u.events)], ['Rated', moneyNode(u.rated, cur)],
      [u.invoice ? 'Invoiced' : 'Estimated invoice', moneyNode(u.estimate.total, cur)],
      ['Invoice', u.invoice ? h('a', { href: invoiceLink(u.invoice) }, u.invoice) : 'not issued yet'],
    ]));
    if (u.credit_limit && num(u.credit_limit) > 0) {
      const used = 100 * num(u.estimate.total) / num(u.credit_limit);
      body.append(meter('Credit limit used', `${used.toFixed(1)} % of ${money(u.credit_limit, cur)}`, used));
    }
    const byService = new Map();
    for (const b of u.buckets) byService.set(b.service, (byService.get(b.service) || 0) + num(b.amount));
    if (!byService.size) return body.append(empty('No usage in this period.'));
    const services = [...byService.keys()];
    chartBox(body, doughnutConfig(services, services.map((x) => byService.get(x)),
      services.map((x, i) => colourOf(i, x)), { label: 'Rated usage by service', series: 'Rated' }), 'short');
  }, { id: 'usage', note: 'rated usage and the invoice it makes' });
  card(grid, 'Allowances left', async (body) => {
    const u = await usage;
    if (!u) return body.append(empty('No usage yet.'));
    if (!u.allowances.length) return body.append(empty('The plan has no allowances.'));
    for (const a of u.allowances) {
      const granted = num(a.granted);
      body.append(h('div', { 'data-allowance': a.service },
        meter(`${a.service} · ${a.zones.join(', ')}`, `${decimal(a.left)} ${a.unit} left of ${decimal(a.granted)}`,
          granted ? 100 * num(a.used) / granted : 0)));
    }
  }, { id: 'allowances', note: period || '' });
  card(grid, 'Usage buckets', async (body) => {
    const u = await usage;
    if (!u || !u.buckets.length) return body.append(empty('No usage in this period.'));
    body.append(table([
      { key: 'service' }, { key: 'zone' }, { key: 'band' }, { key: 'units', type: 'num' },
      { key: 'events', type: 'int' }, { key: 'price', type: 'num' }, { key: 'amount', type: 'money' },
    ], u.buckets, { currency: u.currency }));
  }, { wide: true, id: 'buckets', note: 'rated, before allowances and discounts' });
  card(grid, 'Invoices', async (body) => {
    const list = await getJSON(`/api/invoices?customer=${encodeURIComponent(id)}`);
    if (!list.length) return body.append(empty('No invoice issued yet.'));
    body.append(table(invoiceColumns(), list));
  }, { wide: true, id: 'customer-invoices' });
  card(grid, 'Events', async (body) => {
    if (!period) return body.append(empty('No usage yet.'));
    body.append(eventsTable(await getJSON(`${base}/events?period=${period}&limit=200`)));
  }, { wide: true, id: 'customer-events', note: `${period || ''}, newest first; open one for its explanation` });
}

// A customer's events (`/api/customers/{id}/events`), each linking to its explanation.
function eventsTable(answer) {
  if (!answer.events.length) return empty('No rated events in this period.');
  return table([
    { key: 'record_id', href: (x) => eventLink(x.record_id) },
    { key: 'event_time', label: 'Time', cell: (x) => when(x.event_time) },
    { key: 'service' }, { key: 'peer' }, { key: 'zone' }, { key: 'band' },
    { key: 'duration_sec', label: 'Seconds', type: 'int' }, { key: 'volume_bytes', label: 'Bytes', type: 'int' },
    { key: 'units', type: 'int' }, { key: 'amount', type: 'money' }, { key: 'technology' },
    { key: 'roaming_country', label: 'Roaming' },
  ], answer.events, { pageSize: 25 });
}

function invoicePage(view, number) {
  const head = h('div');
  view.append(head);
  head.append(pageHead(`Invoice ${number}`, null, [['Billing', link('/billing')], [number]]));
  const grid = h('div', { class: 'grid' });
  view.append(grid);
  const path = `/api/invoices/${encodeURIComponent(number)}`;
  const loaded = getJSON(`${path}.json`);
  card(grid, 'Invoice', async (body, actions) => {
    const inv = await loaded;
    const c = inv.customer || {};
    head.replaceChildren(pageHead(`Invoice ${inv.number}`, `${c.name} · ${monthOf(inv.period_start)}`,
      [['Billing', link('/billing')], [c.name, customerLink(c.id)], [inv.number]]));
    actions.append(
      h('a', { class: 'chip', href: `${path}.pdf`, download: '', 'data-pdf': inv.number }, 'PDF'),
      h('a', { class: 'chip', href: `${path}.json`, download: '', 'data-json': inv.number }, 'JSON'));
    body.append(facts([
      ['Customer', h('a', { href: customerLink(c.id) }, `${c.name} (${c.id})`)],
      ['MSISDN', c.msisdn], ['Plan', inv.plan_name],
      ['Period', `${inv.period_start} – ${inv.period_end}`],
      ['Issued', when(inv.issued_at)], ['Catalog version', String(inv.catalog_version)],
    ]));
    const cur = inv.currency || CURRENCY;
    body.append(h('div', { class: 'totals' },
      h('div', {}, h('span', {}, 'Subtotal'), moneyNode(inv.subtotal, cur)),
      h('div', {}, h('span', {}, `VAT ${+(num(inv.vat_rate) * 100).toFixed(4)} %`), moneyNode(inv.vat, cur)),
      h('div', { 'data-total': inv.total }, h('span', {}, 'Total'), moneyNode(inv.total, cur))));
  }, { id: 'invoice' });
  card(grid, 'Allowances', async (body) => {
    const inv = await loaded;
    if (!(inv.allowances || []).length) return body.append(empty('No allowances on this plan.'));
    body.append(table([
      { key: 'service' }, { key: 'zones', cell: (a) => (a.zones || []).join(', ') }, { key: 'unit' },
      { key: 'granted', type: 'num' }, { key: 'used', type: 'num' }, { key: 'left', type: 'num' },
      { key: 'credit', type: 'money' },
    ], inv.allowances, { currency: inv.currency }));
  }, { id: 'invoice-allowances' });
  card(grid, 'Lines', async (body) => {
    const inv = await loaded;
    body.append(table([
      { key: 'kind', cell: (l) => l.kind.replace(/_/g, ' ') }, { key: 'description' }, { key: 'service' }, { key: 'date' },
      { key: 'quantity', type: 'num' }, { key: 'unit' }, { key: 'rated', type: 'money' },
      { key: 'amount', type: 'money' },
    ], inv.lines, { currency: inv.currency, pageSize: 100 }));
  }, { wide: true, id: 'invoice-lines' });
  card(grid, 'Events of the period', async (body) => {
    const inv = await loaded;
    const list = await getJSON(`/api/customers/${encodeURIComponent(inv.customer.id)}/events?period=${monthOf(inv.period_start)}&limit=200`);
    body.append(eventsTable(list));
  }, { wide: true, id: 'invoice-events', note: 'rated events, newest first; open one for its explanation' });
}

function eventPage(view, recordId) {
  view.append(pageHead(`Event ${recordId}`, 'How its price was made', [['Billing', link('/billing')], ['Event'], [recordId]]));
  const grid = h('div', { class: 'grid' });
  view.append(grid);
  card(grid, 'Explanation', async (body, actions) => {
    if (history.length > 1) {
      actions.append(h('button', { type: 'button', class: 'chip', onclick: () => history.back() }, '← Back'));
    }
    const e = await getJSON(`/api/events/${encodeURIComponent(recordId)}/explain`);
    body.append(h('pre', { class: 'explain', 'data-explain': e.record_id }, e.text));
  }, { wide: true, id: 'explain', note: 'as `cdrflow explain` prints it' });
}

// ---------------------------------------------------------------- filters and rendering

function fillSelect(select, values, allLabel) {
  select.replaceChildren(h('option', { value: '' }, allLabel), ...values.map((v) => h('option', { value: v }, v)));
}

function syncFilterBar() {
  for (const f of FILTERS) {
    const select = document.getElementById(`f-${f}`);
    const value = state.filters[f] || '';
    if (value && ![...select.options].some((o) => o.value === value)) select.append(h('option', { value }, value));
    select.value = value;
    const field = select.closest('.field');
    field.classList.toggle('set', !!value);
    field.classList.toggle('unused', !state.used.has(f));
    select.title = state.used.has(f) ? '' : 'No figure on this page depends on this filter';
  }
}

function showFreshness() {
  document.getElementById('freshness').textContent = state.refreshed ? `Reports refreshed ${when(state.refreshed)}` : '';
}

function teardown() {
  for (const t of state.timers) clearTimeout(t);
  state.timers = [];
  for (const c of state.charts) c.destroy();
  state.charts = [];
  state.unborn = [];
}

function render() {
  const route = parseHash();
  if (!PAGES[route.page] || (['region', 'customer', 'invoice', 'event'].includes(route.page) && !route.arg)) {
    location.replace(link('/overview', route.filters));
    return;
  }
  teardown();
  state.token += 1;
  state.pending = 0;
  state.used = new Set();
  state.refreshed = null;
  state.route = route;
  state.filters = route.filters;
  showFreshness();
  const view = document.getElementById('view');
  view.dataset.ready = '0';
  view.dataset.render = String(state.token);
  view.dataset.page = route.page;
  view.replaceChildren();
  for (const a of document.querySelectorAll('#nav a')) {
    a.href = link(`/${a.dataset.page}`);
    if (a.dataset.page === (SECTION[route.page] || route.page)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  // The page starts its work synchronously (so the filters it uses are known below);
  // the render itself counts as one piece of work, so that `ready` is set exactly once
  // even on a page with nothing to wait for.
  try {
    PAGES[route.page](view, route.arg);
  } catch (e) {
    view.replaceChildren(h('div', { class: 'error', role: 'alert' }, e.message || String(e)));
  }
  track(Promise.resolve());
  syncFilterBar();
  document.title = `${route.arg || route.page.charAt(0).toUpperCase() + route.page.slice(1)} · cdrflow`;
  window.scrollTo(0, 0);
}

function onFilterChange() {
  const filters = {};
  for (const f of FILTERS) {
    const v = document.getElementById(`f-${f}`).value;
    if (v) filters[f] = v;
  }
  const raw = location.hash.replace(/^#/, '');
  const path = raw.split('?')[0] || '/overview';
  location.hash = link(path, filters);
}

async function start() {
  Chart.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
  Chart.defaults.color = '#475569';
  Chart.defaults.borderColor = '#e2e8f0';
  Chart.defaults.plugins.tooltip.backgroundColor = '#0f172a';
  Chart.defaults.plugins.legend.labels.boxWidth = 12;
  Chart.defaults.datasets.bar.maxBarThickness = 56;
  if (matchMedia('(prefers-reduced-motion: reduce)').matches) Chart.defaults.animation = false;
  const view = document.getElementById('view');
  try {
    const [reports, options] = await Promise.all([getJSON('/api/reports'), getJSON('/api/filters')]);
    const list = Array.isArray(reports) ? reports : reports.reports;
    state.catalog = new Map(list.map((r) => [r.name, r]));
    state.options = options;
  } catch (e) {
    view.replaceChildren(h('div', { class: 'error', role: 'alert' }, `The dashboard cannot start: ${e.message}`));
    view.dataset.ready = '1';
    return;
  }
  // Without a period, most reports answer for the latest month and trends for all; each
  // card says which.
  fillSelect(document.getElementById('f-period'), [...state.options.periods].sort().reverse(),
    latestPeriod() ? `Latest (${latestPeriod()})` : 'Latest');
  fillSelect(document.getElementById('f-service'), state.options.services, 'All services');
  fillSelect(document.getElementById('f-region'), state.options.regions, 'All regions');
  fillSelect(document.getElementById('f-plan'), state.options.plans, 'All plans');
  for (const f of FILTERS) document.getElementById(`f-${f}`).addEventListener('change', onFilterChange);
  document.getElementById('f-clear').addEventListener('click', () => {
    location.hash = link((location.hash.replace(/^#/, '').split('?')[0]) || '/overview', {});
  });
  window.addEventListener('hashchange', render);
  if (!location.hash) location.replace('#/overview');
  render();
}

document.addEventListener('DOMContentLoaded', start);
