// ui.test.mjs — end-to-end test of the Tickwire web UI in headless Chromium (issue 8).
//
// Starts the real server binary on a free loopback port with a 50-symbol synthetic feed at
// 2,000 quotes/s, opens the page it serves at GET / in Debian's /usr/bin/chromium (driven by
// playwright-core over CDP), and checks what a user sees: the watchlist fills, prices move,
// the ladder shows asks above bids with best bid < best ask, trades appear, latency is shown,
// and rendering is per animation frame rather than per message. It saves a screenshot to
// target/ui-screenshot.png (and target/ui-screenshot-reconnected.png at the end), then kills
// the server (the page must say disconnected), restarts it on the same port, and checks that
// the page reconnects by itself and updates again.
//
// Setup (once):  npm install --prefix server/tests/browser
//                apt-get install -y chromium
// Run:           node --test server/tests/browser/
// Environment:
//   TICKWIRE_BIN      server binary (default: target/release/tickwire under the repo root).
//   CHROMIUM          browser binary (default: /usr/bin/chromium).
//   TICKWIRE_WEB_FROM_SOURCE=1  serve the page assets from server/web/ in this checkout through
//                     a small in-test proxy that forwards everything else (/symbols, /ws, …)
//                     to the server: for UI work without rebuilding the binary.

import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { addDecimal, compareDecimal } from '../../web/tickwire.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../../..');
const BIN = process.env.TICKWIRE_BIN ? path.resolve(process.env.TICKWIRE_BIN) : path.join(REPO, 'target/release/tickwire');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const FROM_SOURCE = process.env.TICKWIRE_WEB_FROM_SOURCE === '1';
const SCREENSHOT = path.join(REPO, 'target/ui-screenshot.png');
const SYMBOLS = 50;

// ---- server process -------------------------------------------------------------------------
async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function startServer(port) {
  const args = ['serve', '--feed', 'synthetic', '--symbols', String(SYMBOLS), '--rate', '2000', '--seed', '7', '--listen', `127.0.0.1:${port}`];
  // A .js/.mjs "binary" (the mock server in server/web/testkit) runs under this Node.
  const [cmd, argv] = /\.m?js$/.test(BIN) ? [process.execPath, [BIN, ...args]] : [BIN, args];
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.output = '';
  const keep = (d) => {
    proc.output = (proc.output + d).slice(-8000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  proc.exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  return proc;
}

async function waitHttp(url, proc, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  let exited = null;
  proc.exited.then((e) => (exited = e));
  while (Date.now() < end) {
    if (exited) throw new Error(`server exited (${JSON.stringify(exited)}) before serving ${url}:\n${proc.output}`);
    try {
      const res = await fetch(url);
      if (res.ok) return res;
    } catch (_) {
      /* not listening yet */
    }
    await sleep(100);
  }
  throw new Error(`server did not serve ${url} within ${timeoutMs} ms:\n${proc.output}`);
}

async function stopServer(proc, signal = 'SIGKILL') {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill(signal);
  await proc.exited;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- optional proxy: page assets from this checkout, the rest from the server ---------------
const ASSETS = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/tickwire.js': ['tickwire.js', 'text/javascript; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8'],
};

function startSourceProxy(backendPort) {
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const asset = ASSETS[new URL(req.url, 'http://x').pathname];
    if (asset) {
      res.writeHead(200, { 'content-type': asset[1], 'cache-control': 'no-store' });
      res.end(fs.readFileSync(path.join(REPO, 'server/web', asset[0])));
      return;
    }
    const up = http.request({ host: '127.0.0.1', port: backendPort, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  server.on('upgrade', (req, client, head) => {
    const up = net.connect(backendPort, '127.0.0.1', () => {
      let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(raw + '\r\n');
      if (head.length) up.write(head);
      up.pipe(client).pipe(up);
    });
    sockets.add(client).add(up);
    const done = () => {
      client.destroy();
      up.destroy();
      sockets.delete(client);
      sockets.delete(up);
    };
    up.on('error', done).on('close', done);
    client.on('error', done).on('close', done);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      server.stopAll = () => {
        for (const s of sockets) s.destroy();
        server.close();
      };
      resolve(server);
    }),
  );
}

// ---- page helpers -----------------------------------------------------------------------------
async function watchValues(page) {
  return page.$$eval('#watchlist tbody tr[data-symbol]', (rows) =>
    rows.map((r) => ({
      symbol: r.dataset.symbol,
      bid: r.querySelector('td.bid').textContent,
      ask: r.querySelector('td.ask').textContent,
      last: r.querySelector('td.last').textContent,
    })),
  );
}

async function changedRows(page, before, waitMs) {
  await sleep(waitMs);
  const after = await watchValues(page);
  const prev = new Map(before.map((r) => [r.symbol, r]));
  return after.filter((r) => {
    const p = prev.get(r.symbol);
    return p && (p.bid !== r.bid || p.ask !== r.ask || p.last !== r.last) && r.bid !== '—';
  }).length;
}

async function ladder(page) {
  return page.evaluate(() => {
    const read = (sel) =>
      [...document.querySelectorAll(sel)].map((row) => {
        const b = row.getBoundingClientRect();
        return {
          price: row.querySelector('.price').textContent,
          size: row.querySelector('.size').textContent,
          total: row.querySelector('.total').textContent,
          top: b.top,
          bottom: b.bottom,
          visible: b.height > 0,
        };
      });
    return { asks: read('#asks .lvl:not(.empty)'), bids: read('#bids .lvl:not(.empty)'), symbol: document.getElementById('book-symbol').textContent };
  });
}

async function tapeTrades(page) {
  return page.$$eval('#tape .trade:not(.marker):not([hidden])', (rows) =>
    rows.map((r) => ({ time: r.children[0].textContent, symbol: r.children[1].textContent, price: r.children[2].textContent, size: r.children[3].textContent })),
  );
}

async function connState(page) {
  return page.$eval('#conn', (e) => ({ mode: e.dataset.conn, text: e.textContent.trim() }));
}

// ---------------------------------------------------------------------------------------------
test('trading UI in headless Chromium against the real server', { timeout: 180_000 }, async (t) => {
  assert.ok(fs.existsSync(BIN), `server binary not found at ${BIN}: build it (cargo build --release -p tickwire-server) or set TICKWIRE_BIN`);
  assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM)`);

  const port = await freePort();
  let server = startServer(port);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tickwire-ui-'));
  let context;
  let proxy;
  const pageErrors = [];
  t.after(async () => {
    if (context) await context.close().catch(() => {});
    if (proxy) proxy.stopAll();
    await stopServer(server);
    fs.rmSync(userDataDir, { recursive: true, force: true });
  });

  await waitHttp(`http://127.0.0.1:${port}/symbols`, server);
  let origin = `http://127.0.0.1:${port}`;
  if (FROM_SOURCE) {
    proxy = await startSourceProxy(port);
    origin = `http://127.0.0.1:${proxy.address().port}`;
  }

  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1600, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (e) => pageErrors.push(e.message));

  const res = await page.goto(origin + '/');
  assert.equal(res.status(), 200, 'GET / serves the page');
  assert.match(await page.title(), /Tickwire/);

  await t.test('the page is live and the watchlist fills with quotes', async () => {
    await page.waitForSelector('#conn[data-conn="live"]', { timeout: 15000 });
    await page.waitForFunction(
      (n) => {
        const rows = document.querySelectorAll('#watchlist tbody tr[data-symbol]');
        return rows.length === n && [...rows].every((r) => r.querySelector('td.bid').textContent !== '—' && r.querySelector('td.ask').textContent !== '—');
      },
      SYMBOLS,
      { timeout: 15000 },
    );
    const rows = await watchValues(page);
    assert.equal(rows.length, SYMBOLS);
    for (const r of rows) {
      assert.match(r.bid, /^\d+(\.\d+)?$/, `${r.symbol} bid is a decimal`);
      assert.match(r.ask, /^\d+(\.\d+)?$/, `${r.symbol} ask is a decimal`);
      assert.equal(compareDecimal(r.bid, r.ask), -1, `${r.symbol}: bid ${r.bid} < ask ${r.ask}`);
    }
  });

  await t.test('Chromium negotiated permessage-deflate and decodes the compressed frames', async () => {
    // Browsers offer compression by default and leave the server's context to the server,
    // which keeps it (clients of identical streams may share a window). The page batches
    // (tickwire.json.batch), so its messages are compressed one by one and spliced; either
    // way every frame it renders went through Chromium's inflater.
    const ext = await page.evaluate(() => window.tickwireApp.client.ws && window.tickwireApp.client.ws.extensions);
    assert.match(ext || '', /permessage-deflate/);
    assert.doesNotMatch(ext, /server_no_context_takeover/);
  });

  await t.test('Chromium decodes shared-window frames to the same messages as per-message ones', async () => {
    // Two sockets on the same subscription: tickwire.json (eligible for a compression window
    // shared with other clients of the same stream) and tickwire.json.batch (every message
    // compressed on its own, then spliced). Both are inflated by Chromium itself.
    const before = await (await fetch(`http://127.0.0.1:${port}/stats`)).json();
    const got = await page.evaluate(async () => {
      const open = (proto) =>
        new Promise((resolve, reject) => {
          const ws = new WebSocket(`ws://${location.host}/ws`, proto);
          const msgs = [];
          ws.onmessage = (e) => {
            const v = JSON.parse(e.data);
            for (const m of Array.isArray(v) ? v : [v]) msgs.push(m);
          };
          ws.onopen = () => {
            ws.send(JSON.stringify({ op: 'subscribe', id: 1, symbols: ['SYM0001', 'SYM0002'], channels: ['quote', 'trade', 'book'], depth: 10 }));
            resolve({ ws, msgs });
          };
          ws.onerror = () => reject(new Error('socket error'));
        });
      const a = await open('tickwire.json');
      const b = await open('tickwire.json.batch');
      await new Promise((r) => setTimeout(r, 2500));
      const out = { extA: a.ws.extensions, protoA: a.ws.protocol, a: a.msgs, b: b.msgs };
      a.ws.close();
      b.ws.close();
      return out;
    });
    const after = await (await fetch(`http://127.0.0.1:${port}/stats`)).json();
    assert.equal(got.protoA, 'tickwire.json');
    assert.match(got.extA, /permessage-deflate/);
    assert.doesNotMatch(got.extA, /server_no_context_takeover/);
    assert.ok(after.shared_stream_frames > before.shared_stream_frames, 'the tickwire.json socket followed a shared window');
    const key = (m) => `${m.type}/${m.symbol}/${m.chan_seq}`;
    const b = new Map(got.b.filter((m) => m.chan_seq !== undefined).map((m) => [key(m), m]));
    let compared = 0;
    for (const m of got.a) {
      if (m.chan_seq === undefined || !b.has(key(m))) continue;
      assert.deepEqual(m, b.get(key(m)));
      compared += 1;
    }
    assert.ok(compared > 100, `only ${compared} messages in common`);
  });

  await t.test('the client library speaks the binary encoding in the browser', async () => {
    const got = await page.evaluate(async () => {
      const { TickwireClient, msgpackCodec } = await import('/tickwire.js');
      const c = new TickwireClient({ codecs: [msgpackCodec], heartbeatMs: 0 });
      const quotes = [];
      c.on('quote', (q) => quotes.push(q));
      c.connect();
      await c.subscribe(['SYM0001'], ['quote', 'book']);
      await new Promise((r) => setTimeout(r, 1500));
      const out = { protocol: c.ws.protocol, binaryType: c.ws.binaryType, n: quotes.length, last: quotes[quotes.length - 1], book: c.book('SYM0001') };
      c.close();
      return out;
    });
    assert.equal(got.protocol, 'tickwire.msgpack.batch');
    assert.ok(got.n > 5, `only ${got.n} quotes over msgpack`);
    assert.equal(got.last.symbol, 'SYM0001');
    assert.match(got.last.bid, /^\d+\.\d+$/);
    assert.ok(got.book && got.book.bids.length > 0 && got.book.asks.length > 0);
  });

  await t.test('prices change over a few seconds', async () => {
    const n = await changedRows(page, await watchValues(page), 3000);
    assert.ok(n >= SYMBOLS / 2, `only ${n} of ${SYMBOLS} rows changed in 3 s`);
  });

  await t.test('the ladder shows asks above bids, best bid < best ask', async () => {
    await page.waitForFunction(() => document.querySelectorAll('#bids .lvl:not(.empty)').length >= 10 && document.querySelectorAll('#asks .lvl:not(.empty)').length >= 10, null, { timeout: 10000 });
    const l = await ladder(page);
    assert.match(l.symbol, /^SYM\d{4}$/);
    assert.ok(l.asks.length >= 10 && l.bids.length >= 10, `depth ${l.asks.length}/${l.bids.length}`);
    assert.ok(l.asks.every((a) => a.visible) && l.bids.every((b) => b.visible), 'every level is on screen');
    const lowestAsk = Math.max(...l.asks.map((a) => a.bottom));
    const highestBid = Math.min(...l.bids.map((b) => b.top));
    assert.ok(lowestAsk <= highestBid, 'all ask rows are drawn above all bid rows');
    // Top to bottom, prices fall on both sides; the best ask is the last ask row, the best bid the first bid row.
    for (let i = 1; i < l.asks.length; i++) assert.equal(compareDecimal(l.asks[i - 1].price, l.asks[i].price), 1, 'asks descend');
    for (let i = 1; i < l.bids.length; i++) assert.equal(compareDecimal(l.bids[i - 1].price, l.bids[i].price), 1, 'bids descend');
    const bestAsk = l.asks[l.asks.length - 1].price;
    const bestBid = l.bids[0].price;
    assert.equal(compareDecimal(bestBid, bestAsk), -1, `best bid ${bestBid} < best ask ${bestAsk}`);
    // Totals accumulate from the best level outwards (read in one go, so from one render).
    const cum = (levels) => {
      let sum = '0';
      for (const lv of levels) {
        sum = addDecimal(sum, lv.size);
        assert.equal(compareDecimal(lv.total, sum), 0, `cumulative size at ${lv.price}: ${lv.total} != ${sum}`);
      }
    };
    cum(l.bids);
    cum([...l.asks].reverse());
    const bars = await page.$$eval('#bids .lvl:not(.empty) .bar, #asks .lvl:not(.empty) .bar', (bs) => bs.map((b) => getComputedStyle(b).transform));
    assert.ok(bars.some((tr) => tr !== 'none' && !/matrix\(0,/.test(tr)), 'size bars are drawn');
  });

  await t.test('trades appear on the tape', async () => {
    await page.waitForFunction(() => document.querySelectorAll('#tape .trade:not(.marker):not([hidden])').length >= 10, null, { timeout: 10000 });
    const trades = await tapeTrades(page);
    for (const tr of trades.slice(0, 10)) {
      assert.match(tr.time, /^\d\d:\d\d:\d\d\.\d{3}$/);
      assert.match(tr.symbol, /^SYM\d{4}$/);
      assert.match(tr.price, /^\d+(\.\d+)?$/);
      assert.match(tr.size, /^\d+(\.\d+)?$/);
    }
  });

  await t.test('selecting another symbol moves the book subscription to it', async () => {
    const first = (await ladder(page)).symbol;
    await page.click('#watchlist tr[data-symbol="SYM0003"] td.sym');
    await page.keyboard.press('ArrowDown');
    const sym = 'SYM0004';
    await page.waitForFunction((s) => document.getElementById('book-symbol').textContent === s, sym);
    await page.waitForFunction((s) => {
      const book = window.tickwireApp.client.book(s);
      const top = document.querySelector('#bids .lvl:not(.empty) .price');
      return book && top && top.textContent === book.bids[0][0];
    }, sym, { timeout: 10000 });
    const subs = await page.evaluate(() => window.tickwireApp.client.subscriptions().filter((s) => s.channels.includes('book')).map((s) => s.symbol));
    assert.deepEqual(subs, [sym], `only the selected symbol has a book subscription (was ${first})`);
    const l = await ladder(page);
    assert.equal(compareDecimal(l.bids[0].price, l.asks[l.asks.length - 1].price), -1);
  });

  await t.test('latency p50/p99 are shown', async () => {
    await page.waitForFunction(() => /ms$/.test(document.getElementById('lat-p99').textContent), null, { timeout: 5000 });
    const [p50, p99] = await page.$$eval('#lat-p50, #lat-p99', (e) => e.map((x) => parseFloat(x.textContent)));
    assert.ok(p50 >= 0 && p99 >= p50, `p50 ${p50} p99 ${p99}`);
  });

  await t.test('renders once per animation frame, not per message, and stays smooth', async () => {
    const m = await page.evaluate(async () => {
      const app = window.tickwireApp;
      const r0 = app.ui.renders;
      const m0 = app.ui.msgCount;
      const gaps = [];
      let last = performance.now();
      await new Promise((resolve) => {
        const end = last + 3000;
        const tick = (now) => {
          gaps.push(now - last);
          last = now;
          if (now < end) requestAnimationFrame(tick);
          else resolve();
        };
        requestAnimationFrame(tick);
      });
      gaps.sort((a, b) => a - b);
      return { renders: app.ui.renders - r0, messages: app.ui.msgCount - m0, frames: gaps.length, p50: gaps[gaps.length >> 1], p95: gaps[Math.floor(gaps.length * 0.95)] };
    });
    t.diagnostic(`3 s: ${m.messages} messages, ${m.renders} renders, frame interval p50 ${m.p50.toFixed(1)} ms p95 ${m.p95.toFixed(1)} ms`);
    assert.ok(m.messages > 1000, `the feed is busy (${m.messages} messages in 3 s)`);
    assert.ok(m.renders <= m.frames + 2, `renders (${m.renders}) follow animation frames (${m.frames})`);
    assert.ok(m.renders < m.messages / 5, 'far fewer renders than messages');
    assert.ok(m.p50 < 50, `median frame interval ${m.p50.toFixed(1)} ms (>= 20 fps)`);
  });

  await page.screenshot({ path: SCREENSHOT });
  t.diagnostic(`screenshot: ${SCREENSHOT}`);

  await t.test('the throttle control slows quote updates down', async () => {
    const quoteRate = () =>
      page.evaluate(async () => {
        let n = 0;
        const off = window.tickwireApp.client.on('quote', () => n++);
        await new Promise((r) => setTimeout(r, 2000));
        off();
        return n / 2;
      });
    const full = await quoteRate();
    await page.selectOption('#throttle', '500');
    await page.waitForFunction(() => window.tickwireApp.client.subscriptions().every((s) => s.throttleMs === 500));
    await sleep(500);
    const throttled = await quoteRate();
    t.diagnostic(`quotes/s: ${full.toFixed(0)} unthrottled, ${throttled.toFixed(0)} at 500 ms`);
    // 50 symbols at most 2 quotes/s each, with slack for the interval edges.
    assert.ok(throttled <= SYMBOLS * 2 * 1.5, `throttled quote rate ${throttled}/s`);
    assert.ok(throttled < full / 4, `throttle cut the rate (${full} -> ${throttled})`);
    await page.selectOption('#throttle', '0');
    await page.waitForFunction(() => window.tickwireApp.client.subscriptions().every((s) => s.throttleMs === 0));
  });

  await t.test('symbols can be removed from and added to the watchlist', async () => {
    const sym = 'SYM0049';
    const row = page.locator(`#watchlist tr[data-symbol="${sym}"]`);
    await row.hover();
    await row.locator('button[data-remove]').click();
    await page.waitForFunction((s) => !document.querySelector(`#watchlist tr[data-symbol="${s}"]`), sym);
    const after = await page.evaluate(async (s) => {
      await new Promise((r) => setTimeout(r, 300)); // let the unsubscribe ack land
      let n = 0;
      const off = window.tickwireApp.client.on('quote', (q) => q.symbol === s && n++);
      await new Promise((r) => setTimeout(r, 1000));
      off();
      return n;
    }, sym);
    assert.equal(after, 0, `no more quotes for ${sym} after removing it`);
    await page.fill('#add-input', sym.toLowerCase());
    await page.press('#add-input', 'Enter');
    await page.waitForFunction((s) => {
      const r = document.querySelector(`#watchlist tr[data-symbol="${s}"]`);
      return r && r.querySelector('td.bid').textContent !== '—';
    }, sym, { timeout: 5000 });
    // An unknown symbol is refused without touching the list.
    await page.fill('#add-input', 'NOPE123');
    await page.press('#add-input', 'Enter');
    assert.equal(await page.locator('#watchlist tbody tr[data-symbol]').count(), SYMBOLS);
    assert.match(await page.textContent('#st-event'), /unknown symbol/);
    await page.fill('#add-input', '');
  });

  await t.test('shows disconnected when the server dies', async () => {
    await stopServer(server, 'SIGKILL');
    await page.waitForSelector('#conn[data-conn="disconnected"]', { timeout: 10000 });
    const s = await connState(page);
    assert.match(s.text, /DISCONNECTED/);
  });

  await t.test('reconnects by itself to the restarted server and resumes updating', async () => {
    await sleep(1500); // let the client back off a few times
    server = startServer(port);
    await waitHttp(`http://127.0.0.1:${port}/symbols`, server);
    await page.waitForSelector('#conn[data-conn="live"]', { timeout: 30000 });
    const liveAt = await page.evaluate(() => Date.now());
    const lib = await page.evaluate(() => ({ ...window.tickwireApp.client.stats }));
    assert.ok(lib.reconnects >= 1, 'the client counted a reconnect');
    // Every subscribed stream (50 × quote+trade, plus the selected book) is flagged as a gap.
    assert.ok(lib.gaps >= SYMBOLS * 2, `gaps signalled for the outage: ${lib.gaps}`);
    const n = await changedRows(page, await watchValues(page), 3000);
    assert.ok(n >= SYMBOLS / 2, `only ${n} of ${SYMBOLS} rows changed in 3 s after the restart`);
    // The tape shows trades that happened after the reconnect.
    const newest = (await tapeTrades(page))[0];
    assert.ok(newest, 'the tape has trades');
    const newestMs = await page.evaluate((hms) => {
      const [h, m, rest] = hms.split(':');
      const d = new Date();
      d.setHours(Number(h), Number(m), 0, 0);
      return d.getTime() + Number(rest) * 1000;
    }, newest.time);
    assert.ok(newestMs >= liveAt - 1000, `newest trade ${newest.time} is from after the reconnect`);
    assert.match(await page.$eval('#st-reconnects', (e) => e.textContent), /^[1-9]/, 'the status bar counts the reconnect');
    const l = await ladder(page);
    assert.ok(l.bids.length >= 10 && l.asks.length >= 10, 'the ladder is refilled from the new server');
    assert.equal(compareDecimal(l.bids[0].price, l.asks[l.asks.length - 1].price), -1);
  });

  await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-reconnected.png') });
  assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
});
