#!/usr/bin/env node
// A tiny stand-in for the Tickwire server, for developing and testing the web UI without the
// Rust binary: it speaks the same protocol (JSON frames on /ws: subscribe/unsubscribe/ping,
// quote/trade/book/status with seq, chan_seq, ns ts/recv_ts), runs a seeded random-walk
// market, serves GET /symbols and the UI assets at the routes the real server uses.
// The WebSocket server (RFC 6455 handshake and framing) is hand-written on node:http, so
// this needs no npm package. It accepts the real binary's command line, so the browser
// test can run against it with TICKWIRE_BIN pointing here:
//   node server/web/testkit/mock-server.mjs serve --feed synthetic --symbols 50 --rate 2000 --listen 127.0.0.1:8080
// It is NOT the product: it is deliberately simple (no backpressure/conflation, naive throttle).

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ASSETS = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/tickwire.js': ['tickwire.js', 'text/javascript; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8'],
  '/favicon.svg': ['favicon.svg', 'image/svg+xml'],
};

// ---- deterministic random ---------------------------------------------------------------
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function nowNs() {
  // Wall clock in ns as a decimal string (above 2^53, so it is spliced into the JSON text).
  const ms = Date.now();
  const sub = Math.floor((Number(process.hrtime.bigint() % 1000000n)) % 1000000);
  return (BigInt(ms) * 1000000n + BigInt(sub)).toString();
}

// ---- market -------------------------------------------------------------------------------
class Market {
  constructor({ symbols, rate, seed }) {
    this.rand = mulberry32(seed);
    this.rate = rate;
    this.syms = [];
    for (let i = 0; i < symbols; i++) {
      const name = 'SYM' + String(i).padStart(4, '0');
      const mid = 2000 + Math.floor(this.rand() * 20000); // cents
      this.syms.push({ name, mid, seq: 0, chan: { quote: 0, trade: 0, book: 0 }, bids: [], asks: [] });
    }
    for (const s of this.syms) this.rebuild(s);
    this.bySym = new Map(this.syms.map((s) => [s.name, s]));
  }
  rebuild(s) {
    const r = this.rand;
    const spread = 1 + Math.floor(r() * 3);
    s.bids = [];
    s.asks = [];
    for (let i = 0; i < 50; i++) {
      s.bids.push([s.mid - Math.ceil(spread / 2) - i, 100 * (1 + Math.floor(r() * 30))]);
      s.asks.push([s.mid + Math.floor(spread / 2) + 1 + i, 100 * (1 + Math.floor(r() * 30))]);
    }
  }
  step(emit) {
    const s = this.syms[Math.floor(this.rand() * this.syms.length)];
    const r = this.rand();
    if (r < 0.3) s.mid += this.rand() < 0.5 ? -1 : 1;
    this.rebuild(s);
    const ts = nowNs();
    s.seq++;
    emit(s, 'quote', ts);
    s.seq++;
    emit(s, 'book', ts);
    if (this.rand() < 0.25) {
      s.seq++;
      emit(s, 'trade', ts);
    }
  }
}

const px = (c) => (c / 100).toFixed(2);

function encode(s, channel, ts, depth) {
  s.chan[channel]++;
  const head = `{"type":"${channel}","symbol":"${s.name}","seq":${s.seq},"chan_seq":${s.chan[channel]},"ts":${ts},"recv_ts":${ts}`;
  if (channel === 'quote') {
    const [b, bs] = s.bids[0];
    const [a, as] = s.asks[0];
    return `${head},"bid":"${px(b)}","bid_size":"${bs}","ask":"${px(a)}","ask_size":"${as}"}`;
  }
  if (channel === 'trade') {
    const buy = Math.random() < 0.5;
    const p = buy ? s.asks[0][0] : s.bids[0][0];
    return `${head},"price":"${px(p)}","size":"${100 * (1 + Math.floor(Math.random() * 5))}","side":"${buy ? 'buy' : 'sell'}"}`;
  }
  const lv = (l) => JSON.stringify(l.slice(0, depth).map(([p, q]) => [px(p), String(q)]));
  return `${head},"snapshot":true,"depth":${depth},"bids":${lv(s.bids)},"asks":${lv(s.asks)}}`;
}

// ---- WebSocket framing --------------------------------------------------------------------
function frame(opcode, payload) {
  const len = payload.length;
  let header;
  if (len < 126) header = Buffer.from([0x80 | opcode, len]);
  else if (len < 65536) {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([header, payload]);
}

class Session {
  constructor(socket, server) {
    this.socket = socket;
    this.server = server;
    this.buf = Buffer.alloc(0);
    this.subs = new Map(); // symbol -> {channels:Set, depth, throttle, last:{quote,book}, pending:{}}
    socket.on('data', (d) => this.onData(d));
    socket.on('close', () => server.sessions.delete(this));
    socket.on('error', () => socket.destroy());
  }
  sendText(s) {
    if (!this.socket.destroyed) this.socket.write(frame(1, Buffer.from(s)));
  }
  send(obj) {
    this.sendText(JSON.stringify(obj));
  }
  onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) return;
      const op = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      const masked = this.buf[1] & 0x80;
      const maskOff = off;
      if (masked) off += 4;
      if (this.buf.length < off + len) return;
      const payload = Buffer.from(this.buf.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= this.buf[maskOff + (i & 3)];
      this.buf = this.buf.subarray(off + len);
      if (op === 8) {
        this.socket.end(frame(8, payload.subarray(0, 2)));
        return;
      }
      if (op === 9) this.socket.write(frame(10, payload));
      if (op === 1) this.onText(payload.toString('utf8'));
    }
  }
  onText(text) {
    let req;
    try {
      req = JSON.parse(text);
    } catch (e) {
      return this.send({ type: 'error', id: null, code: 'bad_request', message: 'invalid JSON' });
    }
    const id = req.id ?? null;
    if (req.op === 'ping') return this.sendText(`{"type":"pong","id":${JSON.stringify(id)},"ts":${nowNs()}}`);
    if (req.op !== 'subscribe' && req.op !== 'unsubscribe') return this.send({ type: 'error', id, code: 'bad_request', message: 'unknown op' });
    const market = this.server.market;
    const unknown = (req.symbols || []).filter((s) => !market.bySym.has(s));
    if (unknown.length) return this.send({ type: 'error', id, code: 'unknown_symbol', message: `unknown symbols ${unknown.join(',')}`, symbols: unknown });
    if (req.op === 'subscribe') {
      this.send({ type: 'subscribed', id, symbols: req.symbols, channels: req.channels });
      for (const name of req.symbols) {
        const sub = this.subs.get(name) || { channels: new Set(), depth: 10, throttle: 0, lastSent: {}, timer: {} };
        for (const c of req.channels) sub.channels.add(c);
        sub.depth = req.depth ?? 10;
        sub.throttle = req.throttle_ms ?? 0;
        this.subs.set(name, sub);
        const s = market.bySym.get(name);
        const ts = nowNs();
        if (sub.channels.has('quote')) this.sendText(encode(s, 'quote', ts, sub.depth));
        if (sub.channels.has('book')) this.sendText(encode(s, 'book', ts, sub.depth));
      }
    } else {
      for (const name of req.symbols) {
        const sub = this.subs.get(name);
        if (!sub) continue;
        for (const c of req.channels) sub.channels.delete(c);
        if (!sub.channels.size) this.subs.delete(name);
      }
      this.send({ type: 'unsubscribed', id, symbols: req.symbols, channels: req.channels });
    }
  }
  deliver(s, channel, text) {
    const sub = this.subs.get(s.name);
    if (!sub || !sub.channels.has(channel)) return;
    if (channel !== 'trade' && sub.throttle > 0) {
      const now = Date.now();
      if (now - (sub.lastSent[channel] || 0) < sub.throttle) return; // naive: drops, no trailing send
      sub.lastSent[channel] = now;
    }
    this.sendText(text);
  }
}

export function startMockServer({ symbols = 50, rate = 2000, seed = 1, host = '127.0.0.1', port = 0 } = {}) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/symbols') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(market.syms.map((s) => ({ symbol: s.name, venue: 'synthetic', price_scale: 2, size_scale: 0 }))));
      return;
    }
    const asset = ASSETS[url.pathname];
    if (asset && req.method === 'GET') {
      fs.readFile(path.join(WEB_DIR, asset[0]), (err, data) => {
        if (err) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { 'content-type': asset[1], 'cache-control': 'no-cache' });
        res.end(data);
      });
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  });
  const market = new Market({ symbols, rate, seed });
  server.market = market;
  server.sessions = new Set();
  server.on('upgrade', (req, socket) => {
    if (new URL(req.url, 'http://x').pathname !== '/ws') return socket.destroy();
    const key = req.headers['sec-websocket-key'];
    const accept = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    socket.setNoDelay(true);
    server.sessions.add(new Session(socket, server));
  });
  // `rate` quote updates per second in total, produced in 5 ms ticks.
  let carry = 0;
  const tick = setInterval(() => {
    carry += rate / 200;
    for (; carry >= 1; carry--) {
      market.step((s, channel, ts) => {
        let text = null;
        for (const sess of server.sessions) {
          const sub = sess.subs.get(s.name);
          if (!sub || !sub.channels.has(channel)) continue;
          // chan_seq counts published messages, so encode once per message (depth may differ).
          text = text || encode(s, channel, ts, 50);
          sess.deliver(s, channel, channel === 'book' ? reDepth(text, sub.depth) : text);
        }
        if (!text) s.chan[channel]++;
      });
    }
  }, 5);
  server.on('close', () => clearInterval(tick));
  return new Promise((resolve) => server.listen(port, host, () => resolve(server)));
}

function reDepth(text, depth) {
  const m = JSON.parse(text);
  m.bids = m.bids.slice(0, depth);
  m.asks = m.asks.slice(0, depth);
  m.depth = depth;
  // keep the ns integers exact: splice them back from the original text
  const ts = /"ts":(\d+)/.exec(text)[1];
  const recv = /"recv_ts":(\d+)/.exec(text)[1];
  return JSON.stringify({ ...m, ts: 0, recv_ts: 0 }).replace('"ts":0', `"ts":${ts}`).replace('"recv_ts":0', `"recv_ts":${recv}`);
}

function parseArgs(argv) {
  const o = { symbols: 50, rate: 2000, seed: 1, host: '127.0.0.1', port: 8080 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--symbols') (o.symbols = +v), i++;
    else if (a === '--rate') (o.rate = +v), i++;
    else if (a === '--seed') (o.seed = +v), i++;
    else if (a === '--feed') i++;
    else if (a === '--listen') {
      const j = v.lastIndexOf(':');
      o.host = v.slice(0, j);
      o.port = +v.slice(j + 1);
      i++;
    }
  }
  return o;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const opts = parseArgs(process.argv.slice(2));
  startMockServer(opts).then((srv) => {
    const a = srv.address();
    console.log(`mock tickwire listening on http://${a.address}:${a.port}/ (${opts.symbols} symbols, ${opts.rate} quotes/s)`);
  });
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
