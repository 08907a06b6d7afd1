#!/usr/bin/env node
// Baseline: the Tickwire client protocol served by Node's `ws` library, with the same
// synthetic market semantics as `tickwire serve --feed synthetic`: N symbols SYM0000..,
// R top-of-book (quote) updates per second summed over all symbols, each step touching one
// uniformly chosen symbol and yielding one quote and one book update, a trade about 30% of the
// time and a deeper book change half of the time. Per-symbol `seq`, per-(symbol, channel)
// `chan_seq`, `ts`/`recv_ts` in ns since the epoch.
//
// It is deliberately what a typical Node deployment looks like: one process, one thread,
// each message serialized once and `ws.send` to every subscriber, no conflation and no
// slow-consumer protection (ws buffers without bound). `throttle_ms` is accepted and ignored.
//
// Usage: node server.js [--feed synthetic] --symbols N --rate R [--seed S] [--listen HOST:PORT]
'use strict';

const http = require('http');
const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const o = { symbols: 100, rate: 1000, seed: 1, listen: '127.0.0.1:8080', feed: 'synthetic' };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    const v = argv[i + 1];
    if (!(k in o) || v === undefined) {
      console.error(`unknown or incomplete argument ${argv[i]}`);
      process.exit(2);
    }
    o[k] = k === 'listen' || k === 'feed' ? v : Number(v);
  }
  if (o.feed !== 'synthetic') {
    console.error('only --feed synthetic is supported');
    process.exit(2);
  }
  return o;
}

const args = parseArgs(process.argv.slice(2));
const DEPTH_MAX = 50;
const LEVELS = 30;

// Deterministic PRNG (mulberry32).
let rngState = args.seed >>> 0 || 1;
function rand(n) {
  rngState = (rngState + 0x6d2b79f5) >>> 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (((t ^ (t >>> 14)) >>> 0) % n);
}

// ns since the epoch as a decimal string, from a monotonic clock anchored once. Date.now()
// only has ms resolution, so anchor at the instant it ticks over (spin for at most ~1 ms);
// a plain Date.now() anchor would make every latency look up to 1 ms worse.
const anchor = (() => {
  const first = Date.now();
  let ms = first;
  while (ms === first) ms = Date.now();
  return BigInt(ms) * 1000000n - process.hrtime.bigint();
})();
function nowNs() {
  return (anchor + process.hrtime.bigint()).toString();
}

// Prices are integer ticks of 0.01; sizes are integer lots.
const px = (t) => (t / 100).toFixed(2);

class Sym {
  constructor(i) {
    this.name = 'SYM' + String(i).padStart(4, '0');
    const mid = 5000 + rand(20000);
    this.bids = [];
    this.asks = [];
    for (let l = 0; l < LEVELS; l++) {
      this.bids.push([mid - 1 - l, 100 * (1 + rand(50))]);
      this.asks.push([mid + 1 + l, 100 * (1 + rand(50))]);
    }
    this.seq = 0;
    this.chanSeq = [0, 0, 0]; // quote, trade, book
    this.subs = [new Set(), new Set(), new Set()];
  }
}

const syms = [];
const byName = new Map();
for (let i = 0; i < args.symbols; i++) {
  const s = new Sym(i);
  syms.push(s);
  byName.set(s.name, s);
}
const CHANNELS = { quote: 0, trade: 1, book: 2 };

function header(s, type, ch, ts) {
  s.seq += 1;
  s.chanSeq[ch] += 1;
  return `{"type":"${type}","symbol":"${s.name}","seq":${s.seq},"chan_seq":${s.chanSeq[ch]},"ts":${ts},"recv_ts":${ts}`;
}

function quoteMsg(s, ts) {
  const b = s.bids[0];
  const a = s.asks[0];
  return header(s, 'quote', 0, ts) +
    `,"bid":"${px(b[0])}","bid_size":"${b[1]}","ask":"${px(a[0])}","ask_size":"${a[1]}"}`;
}

function ladder(side, depth) {
  let out = '[';
  const n = Math.min(depth, side.length);
  for (let i = 0; i < n; i++) {
    if (i) out += ',';
    out += `["${px(side[i][0])}","${side[i][1]}"]`;
  }
  return out + ']';
}

// Sends a book update to every book subscriber at its own depth (serialized once per depth).
function publishBook(s, ts) {
  const subs = s.subs[2];
  if (subs.size === 0) {
    s.seq += 1;
    s.chanSeq[2] += 1;
    return;
  }
  const head = header(s, 'book', 2, ts);
  const byDepth = new Map();
  for (const c of subs) {
    const d = c.depth;
    let m = byDepth.get(d);
    if (m === undefined) {
      m = head + `,"snapshot":true,"depth":${d},"bids":${ladder(s.bids, d)},"asks":${ladder(s.asks, d)}}`;
      byDepth.set(d, m);
    }
    c.ws.send(m);
  }
}

function publish(s, ch, msg) {
  for (const c of s.subs[ch]) c.ws.send(msg);
}

// One market step: the top of book of one symbol changes (plus sometimes a trade, and
// sometimes a deeper change), as in the Tickwire synthetic feed.
function step() {
  const s = syms[rand(syms.length)];
  const ts = nowNs();
  const buy = rand(2) === 0;
  const side = buy ? s.bids : s.asks;
  const roll = rand(100);
  const spread = s.asks[0][0] - s.bids[0][0];
  let trade = null;
  if (spread > 6 || (roll < 15 && spread > 1)) {
    const p = buy ? side[0][0] + 1 : side[0][0] - 1; // improve
    side.unshift([p, 100 * (1 + rand(50))]);
    side.length = LEVELS;
  } else if (roll < 55) {
    side[0][1] = 100 * (1 + rand(50)); // resize the touch
  } else if (roll < 70) {
    const [p] = side.shift(); // cancel the touch
    const last = side[side.length - 1][0];
    side.push([buy ? last - 1 : last + 1, 100 * (1 + rand(50))]);
    void p;
  } else {
    const qty = Math.min(side[0][1], 100 * (1 + rand(10)));
    trade = [side[0][0], qty, buy ? 'sell' : 'buy'];
    side[0][1] -= qty;
    if (side[0][1] <= 0) {
      side.shift();
      const last = side[side.length - 1][0];
      side.push([buy ? last - 1 : last + 1, 100 * (1 + rand(50))]);
    }
  }
  if (trade) {
    const m = header(s, 'trade', 1, ts) +
      `,"price":"${px(trade[0])}","size":"${trade[1]}","side":"${trade[2]}"}`;
    publish(s, 1, m);
  }
  publish(s, 0, quoteMsg(s, ts));
  publishBook(s, ts);
  if (rand(2) === 0) {
    const deep = (rand(2) === 0 ? s.bids : s.asks)[1 + rand(LEVELS - 1)];
    deep[1] = 100 * (1 + rand(50));
    publishBook(s, ts);
  }
}

// Pacing: the number of steps due is derived from elapsed time, so R per second holds on
// average whatever the timer granularity.
const startNs = process.hrtime.bigint();
let done = 0;
function pump() {
  if (args.rate > 0) {
    const elapsed = Number(process.hrtime.bigint() - startNs) / 1e9;
    const due = Math.floor(elapsed * args.rate);
    while (done < due) {
      step();
      done += 1;
    }
  }
  setTimeout(pump, 1);
}

function sendError(ws, id, code, message) {
  ws.send(JSON.stringify({ type: 'error', id: id ?? null, code, message }));
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/symbols') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(syms.map((s) => ({ symbol: s.name, venue: 'SYNTH', price_scale: 2, size_scale: 0 }))));
    return;
  }
  res.writeHead(404);
  res.end();
});

const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false });
wss.on('connection', (ws) => {
  const client = { ws, depth: 10, subs: [] };
  ws.on('message', (data, isBinary) => {
    let req;
    try {
      req = JSON.parse(isBinary ? data.toString() : data);
    } catch {
      return sendError(ws, null, 'bad_request', 'invalid JSON');
    }
    const id = typeof req.id === 'number' ? req.id : null;
    if (req.op === 'ping') return ws.send(`{"type":"pong","id":${id}}`);
    if (req.op !== 'subscribe' && req.op !== 'unsubscribe') {
      return sendError(ws, id, 'bad_request', 'unknown op');
    }
    if (!Array.isArray(req.symbols) || req.symbols.length === 0 || !Array.isArray(req.channels)) {
      return sendError(ws, id, 'bad_request', 'symbols and channels must be non-empty arrays');
    }
    const chans = [];
    for (const c of req.channels) {
      if (!(c in CHANNELS)) return sendError(ws, id, 'unknown_channel', `unknown channel ${c}`);
      chans.push(CHANNELS[c]);
    }
    const list = [];
    for (const name of req.symbols) {
      const s = byName.get(name);
      if (!s) return sendError(ws, id, 'unknown_symbol', `unknown symbol ${name}`);
      list.push(s);
    }
    if (req.op === 'subscribe') {
      if (Number.isInteger(req.depth) && req.depth >= 1 && req.depth <= DEPTH_MAX) client.depth = req.depth;
      for (const s of list) for (const ch of chans) {
        s.subs[ch].add(client);
        client.subs.push([s, ch]);
      }
      ws.send(JSON.stringify({ type: 'subscribed', id, symbols: req.symbols, channels: req.channels }));
      // Initial book snapshot, as Tickwire sends one on subscribe.
      if (chans.includes(2)) {
        const ts = nowNs();
        for (const s of list) {
          ws.send(`{"type":"book","symbol":"${s.name}","seq":${s.seq},"chan_seq":${s.chanSeq[2]},"ts":${ts},"recv_ts":${ts},"snapshot":true,"depth":${client.depth},"bids":${ladder(s.bids, client.depth)},"asks":${ladder(s.asks, client.depth)}}`);
        }
      }
    } else {
      for (const s of list) for (const ch of chans) s.subs[ch].delete(client);
      ws.send(JSON.stringify({ type: 'unsubscribed', id, symbols: req.symbols, channels: req.channels }));
    }
  });
  ws.on('close', () => {
    for (const [s, ch] of client.subs) s.subs[ch].delete(client);
  });
  ws.on('error', () => {});
});

const [host, port] = args.listen.split(/:(?=[^:]*$)/);
server.listen(Number(port), host, () => {
  console.error(`node-ws baseline on ws://${args.listen}/ws: ${args.symbols} symbols, ${args.rate} quote updates/s`);
  pump();
});
