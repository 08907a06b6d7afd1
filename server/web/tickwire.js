// tickwire.js — the dependency-free JavaScript client library for Tickwire.
//
// This file owns everything a browser (or Node) client needs to talk to a Tickwire server
// over WebSocket: connecting (with an optional auth ticket), subscribe/unsubscribe with
// promises resolved by the server's acks, per-channel handlers, automatic reconnect with
// exponential backoff and jitter that resubscribes everything, gap and conflation detection
// from `chan_seq`, the latest book and quote per symbol, a wall clock in nanoseconds for
// latency, and exact decimal helpers for the price/size strings. It knows nothing about any
// page: the trading UI (app.js) is just one user of it. Documented in docs/client-js.md.
//
// It is an ES module (`import { TickwireClient } from '/tickwire.js'`); loading it also sets
// `globalThis.Tickwire` so classic scripts and the browser console can use it once loaded
// (`<script type="module" src="/tickwire.js">` or `await import('/tickwire.js')`).
//
// Wire encoding is a pluggable codec ({protocol, binaryType, encode, decode}); JSON is the
// default. A binary codec negotiated by WebSocket subprotocol can be added without touching
// the rest (see `codecs` below).

/** The JSON text codec: the protocol's default encoding. */
export const jsonCodec = Object.freeze({
  name: 'json',
  // Sec-WebSocket-Protocol to offer; null offers none (today's server negotiates none).
  protocol: null,
  binaryType: 'arraybuffer',
  encode(obj) {
    return JSON.stringify(obj);
  },
  decode(data) {
    if (typeof data !== 'string') data = new TextDecoder().decode(data);
    return JSON.parse(data);
  },
});

/** JSON where a frame may hold an array of messages (the server batches pending updates). */
export const jsonBatchCodec = Object.freeze({ ...jsonCodec, name: 'json.batch', protocol: 'tickwire.json.batch' });

/**
 * Decodes one MessagePack value (the subset the server sends: nil, booleans, integers,
 * floats, strings, binary, arrays and maps). 64-bit integers become Numbers, rounded above
 * 2^53 exactly as JSON.parse rounds the JSON encoding's nanosecond timestamps.
 */
export function unpackMsgpack(bytes) {
  const buf = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const utf8 = new TextDecoder();
  let at = 0;
  const need = (n) => {
    if (at + n > buf.length) throw new Error('truncated MessagePack data');
  };
  const u = (n) => {
    need(n);
    const v = n === 1 ? view.getUint8(at) : n === 2 ? view.getUint16(at) : n === 4 ? view.getUint32(at) : Number(view.getBigUint64(at));
    at += n;
    return v;
  };
  const i = (n) => {
    need(n);
    const v = n === 1 ? view.getInt8(at) : n === 2 ? view.getInt16(at) : n === 4 ? view.getInt32(at) : Number(view.getBigInt64(at));
    at += n;
    return v;
  };
  const str = (n) => {
    need(n);
    const s = utf8.decode(buf.subarray(at, at + n));
    at += n;
    return s;
  };
  const bin = (n) => {
    need(n);
    const b = buf.slice(at, at + n);
    at += n;
    return b;
  };
  const arr = (n) => {
    const out = new Array(n);
    for (let k = 0; k < n; k++) out[k] = value();
    return out;
  };
  const map = (n) => {
    const out = {};
    for (let k = 0; k < n; k++) {
      const key = value();
      out[key] = value();
    }
    return out;
  };
  function value() {
    const t = u(1);
    if (t < 0x80) return t;
    if (t < 0x90) return map(t & 0x0f);
    if (t < 0xa0) return arr(t & 0x0f);
    if (t < 0xc0) return str(t & 0x1f);
    if (t >= 0xe0) return t - 0x100;
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return bin(u(1));
      case 0xc5: return bin(u(2));
      case 0xc6: return bin(u(4));
      case 0xca: { need(4); const f = view.getFloat32(at); at += 4; return f; }
      case 0xcb: { need(8); const f = view.getFloat64(at); at += 8; return f; }
      case 0xcc: return u(1);
      case 0xcd: return u(2);
      case 0xce: return u(4);
      case 0xcf: return u(8);
      case 0xd0: return i(1);
      case 0xd1: return i(2);
      case 0xd2: return i(4);
      case 0xd3: return i(8);
      case 0xd9: return str(u(1));
      case 0xda: return str(u(2));
      case 0xdb: return str(u(4));
      case 0xdc: return arr(u(2));
      case 0xdd: return arr(u(4));
      case 0xde: return map(u(2));
      case 0xdf: return map(u(4));
      default: throw new Error(`unsupported MessagePack type 0x${t.toString(16)}`);
    }
  }
  const v = value();
  if (at !== buf.length) throw new Error('trailing bytes after MessagePack value');
  return v;
}

/**
 * The binary codec (`tickwire.msgpack.batch`): the same messages as MessagePack maps, a
 * frame holding one message or an array of them. Requests stay JSON text, as the protocol
 * says for every encoding.
 */
export const msgpackCodec = Object.freeze({
  name: 'msgpack',
  protocol: 'tickwire.msgpack.batch',
  binaryType: 'arraybuffer',
  encode(obj) {
    return JSON.stringify(obj);
  },
  decode(data) {
    return typeof data === 'string' ? JSON.parse(data) : unpackMsgpack(data);
  },
});

/** Connection states, in the order a healthy connection goes through them. */
export const State = Object.freeze({
  IDLE: 'idle', // constructed, connect() not called yet
  CONNECTING: 'connecting', // socket being opened (or ticket being fetched)
  OPEN: 'open', // socket open, subscriptions (re)sent
  RECONNECTING: 'reconnecting', // connection lost, waiting for the backoff delay
  CLOSED: 'closed', // close() called; no more reconnects
});

const CHANNELS = ['quote', 'trade', 'book'];

/** An error the server answered a request with (or a local failure of a request). */
export class TickwireError extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.name = 'TickwireError';
    this.code = code;
    Object.assign(this, extra);
  }
}

/**
 * Reconnect delay for the given attempt (0-based): exponential growth capped at maxMs, and a
 * random part of `jitter` (0..1) of it so that many clients dropped at once by a server
 * restart do not all come back in the same millisecond.
 */
export function backoffDelay(attempt, { initialMs = 250, maxMs = 10000, factor = 2, jitter = 0.5 } = {}, random = Math.random) {
  const base = Math.min(maxMs, initialMs * Math.pow(factor, attempt));
  return Math.round(base * (1 - jitter) + base * jitter * random());
}

// ---------------------------------------------------------------------------------------
// Wall clock in nanoseconds since the epoch, as a Number.
//
// recv_ts/ts are integers around 1.7e18 ns, above 2^53, so JSON.parse rounds them; at that
// magnitude a double's spacing is 256 ns, far below the ~0.1 ms a latency display needs, so
// Number arithmetic on them is fine. The browser side must not use Date.now() alone (1 ms
// steps): performance.timeOrigin + performance.now() gives microseconds. The monotonic clock
// can drift from the wall clock (laptop sleep, NTP steps), so it is re-anchored on Date.now()
// whenever the two disagree by more than 2 ms.
const perf = globalThis.performance;
let clockAnchorMs = perf && typeof perf.timeOrigin === 'number' ? perf.timeOrigin : Date.now() - (perf ? perf.now() : 0);
let clockCheckedAt = -Infinity;

/** Current wall-clock time in ms since the epoch with sub-millisecond resolution. */
export function wallClockMs() {
  if (!perf) return Date.now();
  const mono = perf.now();
  if (mono - clockCheckedAt > 1000) {
    clockCheckedAt = mono;
    const wall = Date.now();
    // Date.now() floors to the ms, so the true wall time is in [wall, wall + 1).
    if (Math.abs(clockAnchorMs + mono - (wall + 0.5)) > 2) clockAnchorMs = wall + 0.5 - mono;
  }
  return clockAnchorMs + mono;
}

/** Current wall-clock time in ns since the epoch (Number; ~256 ns precision). */
export function wallClockNs() {
  return wallClockMs() * 1e6;
}

/** Milliseconds from a message's `recv_ts` (ns) to `rxNs` (default: now). NaN without one. */
export function latencyMs(msg, rxNs = wallClockNs()) {
  const r = msg && msg.recv_ts;
  if (typeof r !== 'number' && typeof r !== 'bigint') return NaN;
  return (rxNs - Number(r)) / 1e6;
}

// ---------------------------------------------------------------------------------------
// Exact decimals. Prices and sizes are decimal strings ("101.25"); comparing or subtracting
// them as floats gives wrong answers at the edges, so these helpers work on BigInt units.

const DEC_RE = /^([+-]?)(\d*)(?:\.(\d*))?$/;
const FAST_RE = /^\d+(?:\.\d+)?$/;

/** Parses "101.25" into {units: 10125n, scale: 2}; throws on anything else. */
export function parseDecimal(s) {
  const m = DEC_RE.exec(String(s).trim());
  if (!m || (m[2] === '' && (m[3] === undefined || m[3] === ''))) throw new TypeError(`not a decimal: ${s}`);
  const frac = m[3] || '';
  let units = BigInt((m[2] || '0') + frac);
  if (m[1] === '-') units = -units;
  return { units, scale: frac.length };
}

function rescale(d, scale) {
  return d.units * 10n ** BigInt(scale - d.scale);
}

function formatUnits(units, scale) {
  const neg = units < 0n;
  let digits = (neg ? -units : units).toString();
  if (scale > 0) {
    digits = digits.padStart(scale + 1, '0');
    digits = digits.slice(0, -scale) + '.' + digits.slice(-scale);
  }
  return (neg ? '-' : '') + digits;
}

/** a + b as an exact decimal string, keeping the larger of the two scales. */
export function addDecimal(a, b) {
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  const s = Math.max(x.scale, y.scale);
  return formatUnits(rescale(x, s) + rescale(y, s), s);
}

/** (a + b) / 2 exactly (one more decimal when needed), e.g. the mid of bid and ask. */
export function midDecimal(a, b) {
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  const s = Math.max(x.scale, y.scale);
  const sum = rescale(x, s) + rescale(y, s);
  return sum % 2n === 0n ? formatUnits(sum / 2n, s) : formatUnits(sum * 5n, s + 1);
}

/** Compares two decimal strings exactly: -1, 0 or 1. */
export function compareDecimal(a, b) {
  // Fast path for the common case, two non-negative prices of one instrument: same length and
  // same decimal point position compare digit by digit, i.e. as strings.
  if (typeof a === 'string' && typeof b === 'string' && a.length === b.length && a[0] !== '-' && b[0] !== '-' && a.indexOf('.') === b.indexOf('.') && FAST_RE.test(a) && FAST_RE.test(b)) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  const s = Math.max(x.scale, y.scale);
  const d = rescale(x, s) - rescale(y, s);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

/** a − b as an exact decimal string, keeping the larger of the two scales. */
export function subtractDecimal(a, b) {
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  const s = Math.max(x.scale, y.scale);
  return formatUnits(rescale(x, s) - rescale(y, s), s);
}

// ---------------------------------------------------------------------------------------

/**
 * A Tickwire connection that survives server restarts.
 *
 * Options (all optional):
 *  url          ws(s):// URL of the endpoint; default: `/ws` on the page's host.
 *  getTicket    async () => string|null; called before every connect attempt, its answer is
 *               sent as `?ticket=` (auth). A throw counts as a failed attempt (backoff).
 *  codec        one codec, or `codecs`: a list offered as subprotocols; the one the server
 *               picks (ws.protocol) decodes. Default: [jsonCodec].
 *  backoff      {initialMs, maxMs, factor, jitter} for reconnect delays.
 *  stableMs     a connection open this long resets the backoff (default 5000).
 *  connectTimeoutMs   give up on an attempt that has not opened by then (default 10000).
 *  heartbeatMs  send an app-level ping this often while open; 0 disables (default 15000).
 *  heartbeatTimeoutMs  drop the connection if nothing arrives this long after a ping (10000).
 *  requestTimeoutMs    reject ping() promises not answered by then (default 10000).
 *  autoReconnect  default true.
 *  WebSocket, setTimeout, clearTimeout, random, now   injectable for tests.
 */
export class TickwireClient {
  constructor(opts = {}) {
    this.opts = opts;
    this.url = opts.url || defaultUrl();
    this.getTicket = opts.getTicket || null;
    this.codecs = opts.codecs || [opts.codec || jsonCodec];
    this.backoff = { initialMs: 250, maxMs: 10000, factor: 2, jitter: 0.5, ...(opts.backoff || {}) };
    this.stableMs = opts.stableMs ?? 5000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10000;
    this.heartbeatMs = opts.heartbeatMs ?? 15000;
    this.heartbeatTimeoutMs = opts.heartbeatTimeoutMs ?? 10000;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 10000;
    this.autoReconnect = opts.autoReconnect ?? true;
    this._WS = opts.WebSocket || globalThis.WebSocket;
    this._setTimeout = opts.setTimeout || ((f, ms) => setTimeout(f, ms));
    this._clearTimeout = opts.clearTimeout || ((t) => clearTimeout(t));
    this._random = opts.random || Math.random;
    this._now = opts.now || (() => Date.now());

    this.state = State.IDLE;
    this.attempt = 0; // consecutive failed attempts, drives the backoff
    this.codec = this.codecs[0];
    this.ws = null;
    this.stats = { messages: 0, frames: 0, reconnects: 0, gaps: 0, conflated: 0, errors: 0 };

    this._handlers = new Map();
    this._nextId = 1;
    this._pending = new Map(); // request id -> {kind, resolve, reject, timer, revert}
    this._waiters = []; // subscribe/unsubscribe promises to settle by the next (re)subscribe round
    this._round = null; // {ids:Set, waiters:[]} the resubscribe round in flight
    this._subs = new Map(); // symbol -> {channels:Set, depth, throttleMs}: desired state
    this._chanSeq = new Map(); // `${symbol}\u0000${channel}` -> last chan_seq seen
    this._books = new Map();
    this._quotes = new Map();
    this._everOpened = false;
    this._timers = { reconnect: null, connect: null, heartbeat: null, heartbeatDeadline: null };
    this._openedAt = 0;
    this._generation = 0; // bumps on every new socket so stale callbacks are ignored
  }

  // ----- events --------------------------------------------------------------------------

  /**
   * Adds a handler; returns a function removing it. Types: quote, trade, book, status,
   * gap, conflation, state, error, message (every server message), ack, pong.
   * Data handlers get (msg, info) with info.rxNs the wall-clock receive time in ns.
   */
  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    const set = this._handlers.get(type);
    if (set) set.delete(fn);
  }

  _emit(type, a, b) {
    const set = this._handlers.get(type);
    if (!set || set.size === 0) return;
    for (const fn of set) {
      try {
        fn(a, b);
      } catch (e) {
        // A failing handler must not break the connection or the other handlers.
        if (type !== 'error') this._emit('error', new TickwireError('handler_error', String((e && e.stack) || e), { cause: e }));
        else if (globalThis.console) console.error(e);
      }
    }
  }

  _setState(state, extra = {}) {
    const previous = this.state;
    this.state = state;
    this._emit('state', { state, previous, attempt: this.attempt, ...extra });
  }

  // ----- connection ----------------------------------------------------------------------

  /** Starts connecting (and keeps reconnecting until close()). Returns this. */
  connect() {
    if (this.state === State.CLOSED) throw new TickwireError('closed', 'client was closed; create a new one');
    if (this.state === State.IDLE) this._open();
    return this;
  }

  /** Closes for good: no more reconnects; pending requests are rejected. */
  close(code = 1000, reason = 'client closed') {
    if (this.state === State.CLOSED) return;
    this._clearAllTimers();
    const ws = this._detach();
    if (ws) {
      try {
        ws.close(code, reason);
      } catch (_) {
        /* already closed */
      }
    }
    this._failAll(new TickwireError('closed', 'client closed'));
    this._setState(State.CLOSED, { code, reason });
  }

  async _open() {
    const gen = ++this._generation;
    this._setState(State.CONNECTING);
    let url = this.url;
    if (this.getTicket) {
      let ticket;
      try {
        ticket = await this.getTicket();
      } catch (e) {
        if (gen !== this._generation || this.state === State.CLOSED) return;
        this._emit('error', new TickwireError('ticket_failed', `getTicket failed: ${(e && e.message) || e}`, { cause: e }));
        this._scheduleReconnect({ code: null, reason: 'ticket failed' });
        return;
      }
      if (gen !== this._generation || this.state === State.CLOSED) return;
      if (ticket != null && ticket !== '') url += (url.includes('?') ? '&' : '?') + 'ticket=' + encodeURIComponent(ticket);
    }
    const protocols = this.codecs.map((c) => c.protocol).filter(Boolean);
    let ws;
    try {
      ws = protocols.length ? new this._WS(url, protocols) : new this._WS(url);
    } catch (e) {
      this._emit('error', new TickwireError('connect_failed', String((e && e.message) || e), { cause: e }));
      this._scheduleReconnect({ code: null, reason: 'constructor threw' });
      return;
    }
    this.ws = ws;
    ws.binaryType = this.codecs[0].binaryType || 'arraybuffer';
    ws.onopen = () => gen === this._generation && this._onOpen();
    ws.onmessage = (ev) => gen === this._generation && this._onMessage(ev.data);
    ws.onclose = (ev) => gen === this._generation && this._onClose(ev.code, ev.reason);
    ws.onerror = () => {}; // always followed by close; the close carries the code
    this._timers.connect = this._setTimeout(() => {
      if (gen !== this._generation) return;
      this._drop(4000, 'connect timeout');
    }, this.connectTimeoutMs);
  }

  _onOpen() {
    this._clearTimer('connect');
    const picked = this.ws.protocol;
    this.codec = (picked && this.codecs.find((c) => c.protocol === picked)) || this.codecs.find((c) => !c.protocol) || this.codecs[0];
    this._openedAt = this._now();
    const isReconnect = this._everOpened;
    this._everOpened = true;
    if (isReconnect) this.stats.reconnects++;
    this._setState(State.OPEN, { reconnect: isReconnect, protocol: picked || null });
    this._resubscribeAll(isReconnect);
    this._armHeartbeat();
  }

  _onClose(code, reason) {
    this._detach();
    this._scheduleReconnect({ code, reason });
  }

  /** Abandons the current socket (e.g. heartbeat or connect timeout) and reconnects. */
  _drop(code, reason) {
    const ws = this._detach();
    if (ws) {
      try {
        ws.close(code, reason);
      } catch (_) {
        /* not open yet */
      }
    }
    this._scheduleReconnect({ code, reason });
  }

  _detach() {
    const ws = this.ws;
    this.ws = null;
    this._generation++;
    this._clearTimer('connect');
    this._clearTimer('heartbeat');
    this._clearTimer('heartbeatDeadline');
    if (ws) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    return ws;
  }

  _scheduleReconnect({ code, reason }) {
    if (this.state === State.CLOSED) return;
    // A connection that stayed up long enough proves the server is back: start over.
    if (this.state === State.OPEN && this._now() - this._openedAt >= this.stableMs) this.attempt = 0;
    this._onConnectionLost();
    if (!this.autoReconnect) {
      this._failAll(new TickwireError('disconnected', `connection closed (${code}) ${reason || ''}`.trim()));
      this._setState(State.CLOSED, { code, reason });
      return;
    }
    const delayMs = backoffDelay(this.attempt, this.backoff, this._random);
    this._setState(State.RECONNECTING, { code, reason, delayMs });
    this.attempt++;
    this._clearTimer('reconnect');
    this._timers.reconnect = this._setTimeout(() => {
      this._timers.reconnect = null;
      if (this.state === State.RECONNECTING) this._open();
    }, delayMs);
  }

  /** Requests in flight on the lost socket: pings fail, (un)subscribes wait for the resync. */
  _onConnectionLost() {
    for (const [id, p] of this._pending) {
      this._clearTimeout(p.timer);
      if (p.kind === 'ping' || p.kind === 'request') p.reject(new TickwireError('disconnected', 'connection lost before the answer'));
      else this._waiters.push(p);
      this._pending.delete(id);
    }
    if (this._round) {
      this._waiters.push(...this._round.waiters);
      this._round = null;
    }
    // chan_seq counts restart with the new subscription: forget the old baselines.
    this._chanSeq.clear();
  }

  _failAll(err) {
    for (const p of this._pending.values()) {
      this._clearTimeout(p.timer);
      p.reject(err);
    }
    this._pending.clear();
    const waiters = this._waiters.concat(this._round ? this._round.waiters : []);
    this._waiters = [];
    this._round = null;
    for (const w of waiters) w.reject(err);
  }

  _clearTimer(name) {
    if (this._timers[name] != null) {
      this._clearTimeout(this._timers[name]);
      this._timers[name] = null;
    }
  }

  _clearAllTimers() {
    for (const name of Object.keys(this._timers)) this._clearTimer(name);
  }

  _armHeartbeat() {
    if (!this.heartbeatMs) return;
    this._clearTimer('heartbeat');
    this._timers.heartbeat = this._setTimeout(() => {
      this._timers.heartbeat = null;
      if (this.state !== State.OPEN) return;
      this.ping().catch(() => {});
      this._clearTimer('heartbeatDeadline');
      this._timers.heartbeatDeadline = this._setTimeout(() => {
        this._timers.heartbeatDeadline = null;
        this._drop(4001, 'heartbeat timeout');
      }, this.heartbeatTimeoutMs);
    }, this.heartbeatMs);
  }

  _send(obj) {
    this.ws.send(this.codec.encode(obj));
  }

  get isOpen() {
    return this.state === State.OPEN && this.ws != null;
  }

  // ----- inbound -------------------------------------------------------------------------

  _onMessage(data) {
    const rxNs = wallClockNs();
    // Any traffic proves the connection is alive.
    if (this._timers.heartbeatDeadline != null) {
      this._clearTimer('heartbeatDeadline');
      this._armHeartbeat();
    }
    let decoded;
    try {
      decoded = this.codec.decode(data);
    } catch (e) {
      this.stats.errors++;
      this._emit('error', new TickwireError('decode_failed', `cannot decode frame: ${e.message}`, { cause: e }));
      return;
    }
    this.stats.frames++;
    const info = { rxNs };
    if (Array.isArray(decoded)) for (const m of decoded) this._dispatch(m, info);
    else this._dispatch(decoded, info);
  }

  _dispatch(m, info) {
    if (!m || typeof m !== 'object') return;
    this.stats.messages++;
    this._emit('message', m, info);
    switch (m.type) {
      case 'quote':
        this._track(m, 'quote');
        this._quotes.set(m.symbol, m);
        this._emit('quote', m, info);
        break;
      case 'trade':
        this._track(m, 'trade');
        this._emit('trade', m, info);
        break;
      case 'book':
        this._track(m, 'book');
        this._books.set(m.symbol, m); // every book message is a full ladder
        this._emit('book', m, info);
        break;
      case 'status':
        this._emit('status', m, info);
        break;
      case 'subscribed':
      case 'unsubscribed':
        if (m.id == null && m.reason) this._revoked(m);
        this._settle(m.id, null, m);
        this._emit('ack', m, info);
        break;
      case 'pong':
        this._settle(m.id, null, m);
        this._emit('pong', m, info);
        break;
      case 'error':
        this.stats.errors++;
        this._onServerError(m);
        break;
      default:
        if (m.id != null) this._settle(m.id, null, m); // answer to request()
        break; // unknown types are allowed: the protocol adds fields and messages freely
    }
  }

  /**
   * The server removed streams on its own (`unsubscribed` with id null and a `reason`, e.g.
   * `not_entitled` after the user's entitlements changed): drop them from the desired
   * state, so a reconnect does not ask for them again, and tell the application.
   */
  _revoked(m) {
    const channels = asList(m.channels);
    for (const s of asList(m.symbols)) {
      const sub = this._subs.get(s);
      if (!sub) continue;
      for (const c of channels) {
        sub.channels.delete(c);
        this._chanSeq.delete(s + '\u0000' + c);
      }
      if (channels.includes('book')) this._books.delete(s);
      if (channels.includes('quote')) this._quotes.delete(s);
      if (sub.channels.size === 0) this._subs.delete(s);
    }
    this._emit('revoked', { symbols: asList(m.symbols), channels, reason: m.reason });
    this._emit('subscriptions', this.subscriptions());
  }

  /** chan_seq bookkeeping: trade jumps are gaps, quote/book jumps are conflation. */
  _track(m, channel) {
    const cs = m.chan_seq;
    if (typeof cs !== 'number') return;
    const key = m.symbol + '\u0000' + channel;
    const last = this._chanSeq.get(key);
    this._chanSeq.set(key, cs);
    if (last === undefined || cs === last + 1) return;
    if (channel === 'trade') {
      this.stats.gaps++;
      if (cs <= last) this._emit('gap', { symbol: m.symbol, channel, reason: 'seq_reset', expected: last + 1, received: cs, missed: null });
      else this._emit('gap', { symbol: m.symbol, channel, reason: 'seq_gap', expected: last + 1, received: cs, missed: cs - last - 1 });
    } else if (cs > last + 1) {
      this.stats.conflated += cs - last - 1;
      this._emit('conflation', { symbol: m.symbol, channel, skipped: cs - last - 1 });
    }
  }

  _settle(id, err, value) {
    if (id == null) return false;
    const p = this._pending.get(id);
    if (!p) return false;
    this._pending.delete(id);
    this._clearTimeout(p.timer);
    if (err) {
      if (p.revert) p.revert(err);
      p.reject(err);
    } else p.resolve(value);
    if (this._round && this._round.ids.has(id)) {
      this._round.ids.delete(id);
      if (err) this._round.error = err;
      if (this._round.ids.size === 0) {
        const { waiters, error } = this._round;
        this._round = null;
        for (const w of waiters) error ? w.reject(error) : w.resolve(value);
      }
    }
    return true;
  }

  _onServerError(m) {
    const err = new TickwireError(m.code || 'error', m.message || 'server error', { id: m.id ?? null, symbols: m.symbols || [] });
    const mine = this._settle(m.id, err);
    this._emit('error', err);
    return mine;
  }

  // ----- subscriptions -------------------------------------------------------------------

  /**
   * Subscribes `symbols` to `channels` (default all three). Resolves with the server's ack
   * (or, if sent while disconnected, when the subscriptions are restored after connecting);
   * rejects with a TickwireError if the server refuses (e.g. code "unknown_symbol"), in which
   * case nothing of this request is remembered.
   * Options: depth (book levels), throttleMs (0 = every update).
   * Channels add to what a symbol already has; the full set is (re)sent so the server's view
   * is the same whether it merges or replaces.
   */
  subscribe(symbols, channels = CHANNELS, { depth, throttleMs } = {}) {
    symbols = uniq(asList(symbols));
    channels = asList(channels);
    if (symbols.length === 0) return Promise.reject(new TickwireError('bad_request', 'no symbols'));
    const before = new Map();
    for (const s of symbols) {
      const prev = this._subs.get(s);
      before.set(s, prev ? { channels: new Set(prev.channels), depth: prev.depth, throttleMs: prev.throttleMs } : null);
      const next = prev || { channels: new Set(), depth: 10, throttleMs: 0 };
      for (const c of channels) next.channels.add(c);
      if (depth != null) next.depth = depth;
      if (throttleMs != null) next.throttleMs = throttleMs;
      this._subs.set(s, next);
    }
    const revert = (err) => {
      for (const [s, prev] of before) {
        if (prev) this._subs.set(s, prev);
        else this._subs.delete(s);
      }
      this._emit('subscriptions', this.subscriptions());
      return err;
    };
    this._emit('subscriptions', this.subscriptions());
    if (!this.isOpen) return this._waitForResync(revert);
    return Promise.all(this._sendGrouped('subscribe', symbols, revert)).then((acks) => acks[0]);
  }

  /** Removes `channels` (default all) of `symbols`. Resolves with the ack. */
  unsubscribe(symbols, channels = CHANNELS) {
    symbols = uniq(asList(symbols));
    channels = asList(channels);
    const affected = [];
    for (const s of symbols) {
      const sub = this._subs.get(s);
      if (!sub) continue;
      affected.push(s);
      for (const c of channels) {
        sub.channels.delete(c);
        this._chanSeq.delete(s + '\u0000' + c);
      }
      if (channels.includes('book')) this._books.delete(s);
      if (channels.includes('quote')) this._quotes.delete(s);
      if (sub.channels.size === 0) this._subs.delete(s);
    }
    this._emit('subscriptions', this.subscriptions());
    if (affected.length === 0) return Promise.resolve(null);
    if (!this.isOpen) return this._waitForResync(null); // the fresh connection never had them
    const id = this._nextId++;
    return this._request({ op: 'unsubscribe', id, symbols: affected, channels }, 'unsubscribe');
  }

  /** Changes the throttle of every subscribed symbol (resends their subscriptions). */
  setThrottle(throttleMs) {
    const symbols = [...this._subs.keys()];
    for (const s of symbols) this._subs.get(s).throttleMs = throttleMs;
    if (!symbols.length) return Promise.resolve(null);
    if (!this.isOpen) return this._waitForResync(null);
    return Promise.all(this._sendGrouped('subscribe', symbols, null)).then((a) => a[0]);
  }

  /** Sends a ping; resolves with {rttMs, pong}. */
  ping() {
    if (!this.isOpen) return Promise.reject(new TickwireError('disconnected', 'not connected'));
    const id = this._nextId++;
    const t0 = wallClockMs();
    return this._request({ op: 'ping', id }, 'ping').then((pong) => ({ rttMs: wallClockMs() - t0, pong }));
  }

  /**
   * Sends any other request (e.g. a future `{op:"replay",...}`) with a fresh id; resolves with
   * the first server message carrying that id, rejects on an `error` with it or after
   * requestTimeoutMs.
   */
  request(msg) {
    if (!this.isOpen) return Promise.reject(new TickwireError('disconnected', 'not connected'));
    const id = this._nextId++;
    return this._request({ ...msg, id }, 'request');
  }

  /** The desired subscriptions: [{symbol, channels:[...], depth, throttleMs}]. */
  subscriptions() {
    return [...this._subs].map(([symbol, s]) => ({ symbol, channels: [...s.channels], depth: s.depth, throttleMs: s.throttleMs }));
  }

  /** The latest full book message of a symbol (bids/asks best first), or undefined. */
  book(symbol) {
    return this._books.get(symbol);
  }

  /** The latest quote message of a symbol, or undefined. */
  quote(symbol) {
    return this._quotes.get(symbol);
  }

  _request(msg, kind, revert = null) {
    return new Promise((resolve, reject) => {
      const p = { kind, resolve, reject, revert, timer: null };
      if (kind === 'ping' || kind === 'request') {
        p.timer = this._setTimeout(() => {
          if (this._pending.delete(msg.id)) reject(new TickwireError('timeout', `no answer to ${msg.op} in time`));
        }, this.requestTimeoutMs);
      }
      this._pending.set(msg.id, p);
      try {
        this._send(msg);
      } catch (e) {
        // The socket died under us; the close event will follow and resync.
        this._clearTimeout(p.timer);
        if (kind === 'ping' || kind === 'request') {
          this._pending.delete(msg.id);
          reject(new TickwireError('disconnected', String(e.message || e)));
        }
      }
    });
  }

  _waitForResync(revert) {
    return new Promise((resolve, reject) => this._waiters.push({ kind: 'resync', resolve, reject, revert }));
  }

  /** Sends one subscribe per distinct (channels, depth, throttle) among `symbols`. */
  _sendGrouped(op, symbols, revert) {
    const groups = new Map();
    for (const s of symbols) {
      const sub = this._subs.get(s);
      if (!sub || sub.channels.size === 0) continue;
      const channels = CHANNELS.filter((c) => sub.channels.has(c));
      const key = `${channels.join(',')}|${sub.depth}|${sub.throttleMs}`;
      if (!groups.has(key)) groups.set(key, { channels, depth: sub.depth, throttleMs: sub.throttleMs, symbols: [] });
      groups.get(key).symbols.push(s);
    }
    const promises = [];
    for (const g of groups.values()) {
      const id = this._nextId++;
      const msg = { op, id, symbols: g.symbols, channels: g.channels, depth: g.depth, throttle_ms: g.throttleMs };
      promises.push(this._request(msg, op, revert));
    }
    return promises;
  }

  /** After (re)connecting: send every desired subscription; on a reconnect, signal gaps. */
  _resubscribeAll(isReconnect) {
    const waiters = this._waiters;
    this._waiters = [];
    const symbols = [...this._subs.keys()];
    if (isReconnect) {
      // Whatever happened while we were away is lost: every subscribed stream has a gap.
      for (const s of symbols) {
        for (const c of this._subs.get(s).channels) {
          this.stats.gaps++;
          this._emit('gap', { symbol: s, channel: c, reason: 'reconnect', expected: null, received: null, missed: null });
        }
      }
    }
    if (symbols.length === 0) {
      for (const w of waiters) w.resolve(null);
      return;
    }
    const before = this._nextId;
    // Refused symbols (e.g. gone after a server restart) are dropped from the desired state.
    const dropRefused = (err) => {
      for (const s of err.symbols && err.symbols.length ? err.symbols : []) this._subs.delete(s);
      this._emit('subscriptions', this.subscriptions());
    };
    const promises = this._sendGrouped('subscribe', symbols, dropRefused);
    for (const p of promises) p.catch(() => {}); // reported through the round and 'error'
    const ids = new Set();
    for (let id = before; id < this._nextId; id++) ids.add(id);
    this._round = { ids, waiters, error: null };
  }
}

function asList(x) {
  if (x == null) return [];
  return Array.isArray(x) ? x : [x];
}

function uniq(list) {
  return [...new Set(list)];
}

function defaultUrl() {
  const loc = globalThis.location;
  if (!loc || !loc.host) return 'ws://127.0.0.1:8080/ws';
  return (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + '/ws';
}

/** Convenience: `Tickwire.connect(opts)` = `new TickwireClient(opts).connect()`. */
/**
 * A `getTicket` for servers with authentication on: POSTs to the ticket endpoint with
 * `Authorization: Bearer <credential>` and returns the ticket. `credential` is a string (an
 * API key or a signed token) or a function returning one (sync or async), called before
 * every attempt so a refreshed token is used. A refusal throws a TickwireError whose code is
 * the server's reason (`credentials_invalid`, `token_expired`, ...).
 *
 *   new TickwireClient({ getTicket: ticketFetcher({ credential: () => myToken() }) })
 */
export function ticketFetcher({ credential, url = '/auth/ticket', fetch: fetchImpl } = {}) {
  const doFetch = fetchImpl || ((...a) => globalThis.fetch(...a));
  return async () => {
    const cred = typeof credential === 'function' ? await credential() : credential;
    if (!cred) throw new TickwireError('credentials_missing', 'no credential to get a ticket with');
    const res = await doFetch(url, { method: 'POST', headers: { Authorization: 'Bearer ' + cred }, cache: 'no-store' });
    let body = null;
    try {
      body = await res.json();
    } catch (e) {
      body = null;
    }
    if (!res.ok || !body || typeof body.ticket !== 'string') {
      const code = (body && (body.reason || body.error)) || 'ticket_failed';
      throw new TickwireError(code, (body && body.message) || `ticket request failed: HTTP ${res.status}`, { status: res.status });
    }
    return body.ticket;
  };
}

export function connect(opts) {
  return new TickwireClient(opts).connect();
}

const Tickwire = {
  TickwireClient,
  TickwireError,
  State,
  jsonCodec,
  connect,
  ticketFetcher,
  backoffDelay,
  wallClockMs,
  wallClockNs,
  latencyMs,
  parseDecimal,
  compareDecimal,
  subtractDecimal,
  addDecimal,
  midDecimal,
};
if (typeof globalThis === 'object' && globalThis) globalThis.Tickwire = Tickwire;
export default Tickwire;
