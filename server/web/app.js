// app.js — the page logic of the Tickwire trading UI (index.html).
//
// Owns: the watchlist, the order-book ladder of the selected symbol, the trades tape, the
// connection pill, latency p50/p99, and the controls (add/remove symbol, throttle, depth,
// replay when the server offers datasets). It talks to the server only through tickwire.js.
//
// Rendering rule: message handlers only update plain JS state and mark what is dirty; the DOM
// is touched once per requestAnimationFrame, and only where a shown value changed. That keeps
// the page smooth with 50 symbols at the full synthetic rate (thousands of messages/s).
//
// URL parameters (for development and tests): ?ws=ws://host:port/ws overrides the endpoint,
// ?symbols=A,B,C sets the watchlist, ?max=N caps the default watchlist (50).

import { TickwireClient, State, compareDecimal, subtractDecimal, addDecimal, midDecimal, latencyMs, ticketFetcher } from './tickwire.js';

const params = new URLSearchParams(location.search);
const MAX_DEFAULT = Math.max(1, Number(params.get('max')) || 50);
const STORE_KEY = 'tickwire.watchlist';
const FLASH_MS = 300;
const LATENCY_WINDOW_MS = 5000;
const TAPE_ROWS = 60;

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
};

// ---- state ------------------------------------------------------------------------------
const ui = {
  rows: new Map(), // symbol -> Row
  order: [], // watchlist order
  selected: null,
  depth: Number($('depth').value),
  throttleMs: Number($('throttle').value),
  tapeFilter: 'all',
  tape: [], // newest first: {kind:'trade', ts, symbol, price, size, side} | {kind:'marker', text, symbol}
  tapeDirty: true,
  bookDirty: true,
  connDirty: true,
  dirtyRows: new Set(),
  flashing: new Map(), // td -> {until, cls}
  knownSymbols: null, // Set from GET /symbols
  everLive: false,
  retryAt: 0,
  lastEvent: '',
  eventDirty: false,
  msgCount: 0,
  renders: 0,
};

class Row {
  constructor(symbol) {
    this.symbol = symbol;
    this.bid = null;
    this.ask = null;
    this.last = null;
    this.ref = null; // first trade price seen: "change" is since then
    this.stale = false;
    this.flash = {}; // cell -> 'up'|'down' pending
    this.shown = {};
    const tr = el('tr');
    tr.dataset.symbol = symbol;
    this.cells = {
      sym: el('td', 'l sym', symbol),
      bid: el('td', 'bid', '—'),
      ask: el('td', 'ask', '—'),
      last: el('td', 'last', '—'),
      chg: el('td', 'chg', '—'),
      pct: el('td', 'pct', '—'),
      x: el('td', 'x'),
    };
    const rm = el('button', null, '×');
    rm.type = 'button';
    rm.title = `Remove ${symbol}`;
    rm.dataset.remove = symbol;
    this.cells.x.append(rm);
    tr.append(...Object.values(this.cells));
    this.tr = tr;
  }
}

// ---- latency window: (time, value) samples of the last few seconds -------------------------
class LatencyWindow {
  constructor(cap = 1 << 16) {
    this.t = new Float64Array(cap);
    this.v = new Float64Array(cap);
    this.cap = cap;
    this.head = 0;
    this.n = 0;
  }
  add(tMs, v) {
    this.t[this.head] = tMs;
    this.v[this.head] = v;
    this.head = (this.head + 1) % this.cap;
    if (this.n < this.cap) this.n++;
  }
  percentiles(nowMs, windowMs) {
    const vals = new Float64Array(this.n);
    let k = 0;
    for (let i = 0, j = (this.head - 1 + this.cap) % this.cap; i < this.n; i++, j = (j - 1 + this.cap) % this.cap) {
      if (nowMs - this.t[j] > windowMs) break;
      vals[k++] = this.v[j];
    }
    if (k === 0) return null;
    const s = vals.subarray(0, k).sort();
    const q = (p) => s[Math.min(k - 1, Math.floor(p * k))];
    return { p50: q(0.5), p99: q(0.99), n: k };
  }
}
const latency = new LatencyWindow();

// ---- client -----------------------------------------------------------------------------
// With authentication on (GET /auth/status), every connect attempt first trades the API key
// for a ticket; the key is asked for once and kept for this tab only (sessionStorage).
const KEY_STORE = 'tickwire.apiKey';
let authEnabled = null;
async function uiTicket() {
  if (authEnabled === null) {
    try {
      authEnabled = (await (await fetch('/auth/status')).json()).enabled === true;
    } catch (e) {
      authEnabled = false; // an older server, or a page served elsewhere: no tickets
    }
  }
  if (!authEnabled) return null;
  const credential = () => {
    let key = sessionStorage.getItem(KEY_STORE);
    if (!key) {
      key = (window.prompt('This Tickwire server needs an API key:') || '').trim();
      if (key) sessionStorage.setItem(KEY_STORE, key);
    }
    return key;
  };
  try {
    return await ticketFetcher({ credential })();
  } catch (e) {
    if (e.status === 401) sessionStorage.removeItem(KEY_STORE); // ask again next attempt
    throw e;
  }
}
const client = new TickwireClient({ url: params.get('ws') || undefined, getTicket: uiTicket });

client.on('quote', (m, info) => {
  sample(m, info);
  const row = ui.rows.get(m.symbol);
  if (!row) return;
  if (m.bid !== row.bid) {
    if (row.bid != null && m.bid != null) row.flash.bid = compareDecimal(m.bid, row.bid) > 0 ? 'up' : 'down';
    row.bid = m.bid;
  }
  if (m.ask !== row.ask) {
    if (row.ask != null && m.ask != null) row.flash.ask = compareDecimal(m.ask, row.ask) > 0 ? 'up' : 'down';
    row.ask = m.ask;
  }
  ui.dirtyRows.add(row);
});

client.on('trade', (m, info) => {
  sample(m, info);
  const row = ui.rows.get(m.symbol);
  if (!row) return;
  if (row.last != null && m.price !== row.last) row.flash.last = compareDecimal(m.price, row.last) > 0 ? 'up' : 'down';
  row.last = m.price;
  if (row.ref == null) row.ref = m.price;
  ui.dirtyRows.add(row);
  pushTape({ kind: 'trade', ts: m.ts, symbol: m.symbol, price: m.price, size: m.size, side: m.side });
});

client.on('book', (m, info) => {
  sample(m, info);
  if (m.symbol === ui.selected) ui.bookDirty = true;
});

client.on('status', (m) => {
  const row = ui.rows.get(m.symbol);
  if (!row) return;
  row.stale = m.state === 'stale';
  ui.dirtyRows.add(row);
  note(`${m.symbol} ${m.state}${m.reason ? ': ' + m.reason : ''}`);
});

client.on('gap', (g) => {
  if (g.reason === 'seq_gap' && g.channel === 'trade') {
    pushTape({ kind: 'marker', symbol: g.symbol, text: `${g.symbol}: ${g.missed} trade${g.missed === 1 ? '' : 's'} missed` });
    note(`gap: ${g.symbol} missed ${g.missed} trade(s)`);
  }
});

client.on('state', (s) => {
  if (s.state === State.OPEN) {
    if (s.reconnect) {
      // A fresh subscription starts from fresh state: the server re-sends `status: stale`
      // for symbols that still are.
      for (const row of ui.rows.values()) {
        if (row.stale) {
          row.stale = false;
          ui.dirtyRows.add(row);
        }
      }
      pushTape({ kind: 'marker', symbol: null, text: 'reconnected · trades during the outage are missing' });
      note('reconnected; subscriptions restored');
    }
    ui.everLive = true;
  } else if (s.state === State.RECONNECTING) {
    ui.retryAt = performance.now() + s.delayMs;
    if (s.previous === State.OPEN) note(`connection lost (${s.code ?? '—'}${s.reason ? ' ' + s.reason : ''})`);
  }
  ui.connDirty = true;
});

client.on('error', (e) => note(`error: ${e.code}: ${e.message}`));
client.on('message', () => ui.msgCount++);

function sample(m, info) {
  const l = latencyMs(m, info.rxNs);
  if (l === l) latency.add(info.rxNs / 1e6, l);
}

function pushTape(item) {
  ui.tape.unshift(item);
  if (ui.tape.length > 400) ui.tape.length = 300;
  ui.tapeDirty = true;
}

function note(text) {
  ui.lastEvent = `${new Date().toLocaleTimeString()}  ${text}`;
  ui.eventDirty = true;
}

// ---- watchlist and selection ----------------------------------------------------------
const tbody = document.querySelector('#watchlist tbody');

function addSymbols(symbols, { subscribe = true } = {}) {
  const added = [];
  for (const raw of symbols) {
    const s = String(raw).trim().toUpperCase();
    if (!s || ui.rows.has(s)) continue;
    const row = new Row(s);
    ui.rows.set(s, row);
    ui.order.push(s);
    tbody.append(row.tr);
    added.push(s);
  }
  if (!added.length) return;
  saveWatchlist();
  $('watch-count').textContent = `(${ui.order.length})`;
  if (subscribe) {
    subscribeWatch(added);
  }
  if (!ui.selected) select(added[0]);
}

// The server refuses a whole request if any symbol is unknown: drop those, retry the rest.
function subscribeWatch(symbols) {
  client.subscribe(symbols, ['quote', 'trade'], { throttleMs: ui.throttleMs }).catch((e) => {
    note(`cannot add ${symbols.join(', ')}: ${e.message}`);
    const bad = new Set(e.symbols && e.symbols.length ? e.symbols : symbols);
    for (const s of bad) removeSymbol(s, { unsubscribe: false });
    const rest = symbols.filter((s) => !bad.has(s) && ui.rows.has(s));
    if (rest.length && e.code === 'unknown_symbol') subscribeWatch(rest);
  });
}

function removeSymbol(symbol, { unsubscribe = true } = {}) {
  const row = ui.rows.get(symbol);
  if (!row) return;
  row.tr.remove();
  ui.rows.delete(symbol);
  ui.dirtyRows.delete(row);
  ui.order = ui.order.filter((s) => s !== symbol);
  for (const td of Object.values(row.cells)) ui.flashing.delete(td);
  if (unsubscribe) client.unsubscribe(symbol).catch((e) => note(`unsubscribe ${symbol}: ${e.message}`));
  saveWatchlist();
  $('watch-count').textContent = `(${ui.order.length})`;
  if (ui.selected === symbol) {
    ui.selected = null;
    select(ui.order[0] || null);
  }
}

function select(symbol) {
  const prev = ui.selected;
  if (prev === symbol) return;
  if (prev) {
    const r = ui.rows.get(prev);
    if (r) r.tr.classList.remove('selected');
    if (ui.rows.has(prev)) client.unsubscribe(prev, ['book']).catch(() => {});
  }
  ui.selected = symbol;
  $('book-symbol').textContent = symbol || '—';
  ui.bookDirty = true;
  ui.tapeDirty = true;
  if (!symbol) return;
  ui.rows.get(symbol)?.tr.classList.add('selected');
  client
    .subscribe(symbol, ['quote', 'trade', 'book'], { depth: ui.depth, throttleMs: ui.throttleMs })
    .catch((e) => note(`book ${symbol}: ${e.message}`));
}

function saveWatchlist() {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(ui.order));
  } catch (_) {
    /* private mode */
  }
}

function savedWatchlist() {
  try {
    const v = JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
    return Array.isArray(v) && v.length ? v : null;
  } catch (_) {
    return null;
  }
}

tbody.addEventListener('click', (ev) => {
  const rm = ev.target.closest('button[data-remove]');
  if (rm) {
    ev.stopPropagation();
    removeSymbol(rm.dataset.remove);
    return;
  }
  const tr = ev.target.closest('tr[data-symbol]');
  if (tr) select(tr.dataset.symbol);
});

// Arrow keys move the selection through the watchlist (unless typing in a field).
document.addEventListener('keydown', (ev) => {
  if (ev.target.closest('input, select, textarea') || (ev.key !== 'ArrowUp' && ev.key !== 'ArrowDown')) return;
  if (!ui.order.length) return;
  ev.preventDefault();
  const i = ui.order.indexOf(ui.selected);
  const j = Math.max(0, Math.min(ui.order.length - 1, i + (ev.key === 'ArrowDown' ? 1 : -1)));
  select(ui.order[j]);
  ui.rows.get(ui.order[j]).tr.scrollIntoView({ block: 'nearest' });
});

$('add-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('add-input');
  const names = input.value.split(/[\s,]+/).map((s) => s.toUpperCase()).filter(Boolean);
  const unknown = ui.knownSymbols ? names.filter((s) => !ui.knownSymbols.has(s)) : [];
  if (unknown.length) {
    note(`unknown symbol: ${unknown.join(', ')}`);
    input.setCustomValidity('unknown symbol');
    input.reportValidity();
    return;
  }
  input.setCustomValidity('');
  addSymbols(names);
  input.value = '';
});
$('add-input').addEventListener('input', (ev) => ev.target.setCustomValidity(''));

$('throttle').addEventListener('change', (ev) => {
  ui.throttleMs = Number(ev.target.value);
  client.setThrottle(ui.throttleMs).catch((e) => note(`throttle: ${e.message}`));
  note(ui.throttleMs ? `throttle ${ui.throttleMs} ms` : 'throttle off');
});

$('depth').addEventListener('change', (ev) => {
  ui.depth = Number(ev.target.value);
  buildLadder();
  if (ui.selected) client.subscribe(ui.selected, ['book'], { depth: ui.depth }).catch((e) => note(`depth: ${e.message}`));
});

for (const [id, mode] of [['tape-all', 'all'], ['tape-sel', 'selected']]) {
  $(id).addEventListener('click', () => {
    ui.tapeFilter = mode;
    $('tape-all').classList.toggle('on', mode === 'all');
    $('tape-sel').classList.toggle('on', mode === 'selected');
    ui.tapeDirty = true;
  });
}

// ---- ladder -------------------------------------------------------------------------------
const ladder = { asks: [], bids: [] };

function buildLadder() {
  for (const side of ['asks', 'bids']) {
    const box = $(side);
    box.textContent = '';
    ladder[side] = [];
    for (let i = 0; i < ui.depth; i++) {
      const row = el('div', 'lvl empty');
      const bar = el('div', 'bar');
      const price = el('span', 'price');
      const size = el('span', 'size');
      const total = el('span', 'total');
      row.append(bar, price, size, total);
      box.append(row);
      ladder[side].push({ row, bar, price, size, total, shown: '' });
    }
  }
  ui.bookDirty = true;
}

function renderLadder() {
  const book = ui.selected ? client.book(ui.selected) : undefined;
  const bids = book ? book.bids.slice(0, ui.depth) : [];
  const asks = book ? book.asks.slice(0, ui.depth) : [];
  let max = 0;
  for (const [, q] of bids) max = Math.max(max, Number(q));
  for (const [, q] of asks) max = Math.max(max, Number(q));
  // Asks: best ask at the bottom, next to the spread; bids: best bid at the top.
  fillSide(ladder.asks, asks, max, true);
  fillSide(ladder.bids, bids, max, false);
  const bb = bids[0]?.[0];
  const ba = asks[0]?.[0];
  $('spread-mid').textContent = bb && ba ? midDecimal(bb, ba) : '—';
  $('spread-val').textContent = bb && ba ? `spread ${subtractDecimal(ba, bb)}` : '';
}

function fillSide(slots, levels, max, reversed) {
  let total = '0';
  const totals = levels.map(([, q]) => (total = addDecimal(total, q)));
  const n = slots.length;
  for (let i = 0; i < n; i++) {
    const idx = reversed ? n - 1 - i : i; // index into levels, 0 = best
    const slot = slots[i];
    const lv = levels[idx];
    if (!lv) {
      if (slot.shown !== '') {
        slot.row.className = 'lvl empty';
        slot.shown = '';
      }
      continue;
    }
    const key = lv[0] + '|' + lv[1] + '|' + totals[idx] + '|' + max; // the total and bar depend on other levels
    if (slot.shown === key) continue;
    slot.shown = key;
    slot.row.className = idx === 0 ? 'lvl best' : 'lvl';
    slot.price.textContent = lv[0];
    slot.size.textContent = lv[1];
    slot.total.textContent = totals[idx];
    slot.bar.style.transform = `scaleX(${max > 0 ? Math.min(1, Number(lv[1]) / max).toFixed(3) : 0})`;
  }
}

// ---- tape ---------------------------------------------------------------------------------
const tapeBox = $('tape');
const tapeSlots = [];
for (let i = 0; i < TAPE_ROWS; i++) {
  const row = el('div', 'trade');
  const cells = [el('span'), el('span'), el('span', 'price'), el('span')];
  row.append(...cells);
  row.hidden = true;
  tapeBox.append(row);
  tapeSlots.push({ row, cells, item: null });
}

function fmtTime(tsNs) {
  const ms = Number(tsNs) / 1e6;
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function renderTape() {
  const sel = ui.tapeFilter === 'selected' ? ui.selected : null;
  let i = 0;
  for (const item of ui.tape) {
    if (i >= TAPE_ROWS) break;
    if (sel && item.symbol && item.symbol !== sel) continue;
    const slot = tapeSlots[i++];
    if (slot.item === item) continue;
    slot.item = item;
    slot.row.hidden = false;
    if (item.kind === 'marker') {
      slot.row.className = 'trade marker';
      slot.cells[0].textContent = item.text;
      slot.cells[1].textContent = slot.cells[2].textContent = slot.cells[3].textContent = '';
    } else {
      slot.row.className = `trade ${item.side || ''}`;
      slot.cells[0].textContent = fmtTime(item.ts);
      slot.cells[1].textContent = item.symbol;
      slot.cells[2].textContent = item.price;
      slot.cells[3].textContent = item.size;
    }
  }
  for (; i < TAPE_ROWS; i++) {
    const slot = tapeSlots[i];
    if (slot.item !== null) {
      slot.item = null;
      slot.row.hidden = true;
    }
  }
}

// ---- render loop --------------------------------------------------------------------------
function setText(row, key, text) {
  if (row.shown[key] === text) return;
  row.shown[key] = text;
  row.cells[key].textContent = text;
}

function renderRow(row, now) {
  setText(row, 'bid', row.bid ?? '—');
  setText(row, 'ask', row.ask ?? '—');
  setText(row, 'last', row.last ?? '—');
  if (row.last != null && row.ref != null) {
    const chg = subtractDecimal(row.last, row.ref);
    const sign = compareDecimal(chg, '0');
    const pct = (Number(chg) / Number(row.ref)) * 100;
    setText(row, 'chg', sign > 0 ? '+' + chg : chg);
    setText(row, 'pct', `${sign > 0 ? '+' : ''}${pct.toFixed(2)}%`);
    const cls = sign > 0 ? 'up' : sign < 0 ? 'down' : '';
    if (row.shown.dir !== cls) {
      row.shown.dir = cls;
      row.cells.chg.className = 'chg ' + cls;
      row.cells.pct.className = 'pct ' + cls;
    }
  }
  if (row.shown.stale !== row.stale) {
    row.shown.stale = row.stale;
    row.tr.classList.toggle('stale', row.stale);
  }
  for (const key in row.flash) {
    const cls = row.flash[key] === 'up' ? 'flash-up' : 'flash-down';
    const td = row.cells[key];
    const cur = ui.flashing.get(td);
    if (cur && cur.cls !== cls) td.classList.remove(cur.cls);
    if (!cur || cur.cls !== cls) td.classList.add(cls);
    ui.flashing.set(td, { until: now + FLASH_MS, cls });
  }
  row.flash = {};
}

let lastStatsAt = 0;
let lastMsgCount = 0;

function renderConn(now) {
  const s = client.state;
  let mode;
  let text;
  if (s === State.OPEN) {
    mode = 'live';
    text = 'LIVE';
  } else if (!ui.everLive && s !== State.RECONNECTING) {
    mode = 'connecting';
    text = 'CONNECTING…';
  } else {
    mode = 'disconnected';
    const wait = Math.max(0, ui.retryAt - now);
    text = s === State.RECONNECTING ? `DISCONNECTED · retry ${(wait / 1000).toFixed(1)}s` : 'DISCONNECTED · connecting…';
  }
  const pill = $('conn');
  if (pill.dataset.conn !== mode) {
    pill.dataset.conn = mode;
    document.body.classList.toggle('offline', mode !== 'live');
  }
  const t = $('conn-text');
  if (t.textContent !== text) t.textContent = text;
  ui.connDirty = mode === 'disconnected'; // keep the countdown moving
}

function renderStats(now) {
  if (now - lastStatsAt < 250) return;
  const dt = (now - lastStatsAt) / 1000;
  lastStatsAt = now;
  const pct = latency.percentiles(performance.timeOrigin + now, LATENCY_WINDOW_MS);
  const fmt = (v) => (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)) + ' ms';
  $('lat-p50').textContent = pct ? fmt(pct.p50) : '—';
  $('lat-p99').textContent = pct ? fmt(pct.p99) : '—';
  const rate = (ui.msgCount - lastMsgCount) / dt;
  lastMsgCount = ui.msgCount;
  $('msg-rate').textContent = dt < 5 ? Math.round(rate).toLocaleString('en-US') : '—';
  $('st-msgs').textContent = ui.msgCount.toLocaleString('en-US');
  $('st-reconnects').textContent = client.stats.reconnects;
  $('st-gaps').textContent = client.stats.gaps;
  $('st-conflated').textContent = client.stats.conflated.toLocaleString('en-US');
}

function render(now) {
  ui.renders++;
  if (ui.dirtyRows.size) {
    for (const row of ui.dirtyRows) renderRow(row, now);
    ui.dirtyRows.clear();
  }
  if (ui.flashing.size) {
    for (const [td, f] of ui.flashing) {
      if (now >= f.until) {
        td.classList.remove(f.cls);
        ui.flashing.delete(td);
      }
    }
  }
  if (ui.bookDirty) {
    ui.bookDirty = false;
    renderLadder();
  }
  if (ui.tapeDirty) {
    ui.tapeDirty = false;
    renderTape();
  }
  if (ui.connDirty) renderConn(now);
  if (ui.eventDirty) {
    ui.eventDirty = false;
    $('st-event').textContent = ui.lastEvent;
  }
  renderStats(now);
}

function frame(now) {
  try {
    render(now);
  } finally {
    requestAnimationFrame(frame);
  }
}

// ---- start-up -----------------------------------------------------------------------------
async function loadSymbols() {
  for (let delay = 500; ; delay = Math.min(delay * 2, 5000)) {
    try {
      const res = await fetch('/symbols', { cache: 'no-store' });
      if (res.ok) return (await res.json()).map((s) => s.symbol);
    } catch (_) {
      /* server not up yet */
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

async function probeReplay() {
  try {
    const res = await fetch('/datasets', { cache: 'no-store' });
    if (res.status !== 200) return;
    const list = await res.json();
    if (!Array.isArray(list) || !list.length) return;
    const sel = $('replay-dataset');
    for (const d of list) {
      const name = typeof d === 'string' ? d : d.name || d.id;
      if (name) sel.append(new Option(name, name));
    }
    $('replay-start').addEventListener('click', () => {
      const v = Number($('replay-speed').value);
      // The protocol spells full speed "max" (docs/protocol.md#replay).
      const speed = v > 0 ? v : 'max';
      client
        .request({ op: 'replay', dataset: sel.value, speed })
        .then(() => note(`replay ${sel.value} at ${speed}×`))
        .catch((e) => note(`replay: ${e.message}`));
    });
    $('replay-controls').hidden = false;
  } catch (_) {
    /* no replay on this server */
  }
}

async function main() {
  buildLadder();
  requestAnimationFrame(frame);
  client.connect();
  const fromUrl = params.get('symbols');
  const saved = fromUrl ? null : savedWatchlist();
  if (fromUrl) addSymbols(fromUrl.split(','));
  else if (saved) addSymbols(saved);
  const all = await loadSymbols();
  ui.knownSymbols = new Set(all);
  const list = $('symbol-list');
  for (const s of all) list.append(new Option(s));
  if (!fromUrl && !saved) addSymbols(all.slice(0, MAX_DEFAULT));
  probeReplay();
}

// For debugging from the console and for the browser test.
window.tickwireApp = { client, ui, latency };
main();
