// Test doubles for the client library's unit tests (kept out of test/ so the Node test runner,
// which runs every file under a test/ folder, does not count them as tests): a manual clock
// with timers, and a fake WebSocket class that records what the library sends and lets a test play the server
// (open, send frames, close). Nothing here touches the network or real time.

export class FakeClock {
  constructor(start = 1_000_000) {
    this.t = start;
    this.timers = new Map();
    this.nextId = 1;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
      return id;
    };
    this.clearTimeout = (id) => {
      this.timers.delete(id);
    };
    this.now = () => this.t;
  }

  /** Runs timers due within `ms`, in time order (timers they add run too if due). */
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next = null;
      for (const [id, tm] of this.timers) if (tm.at <= end && (!next || tm.at < next[1].at)) next = [id, tm];
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }

  /** Delays of pending timers, sorted. */
  pending() {
    return [...this.timers.values()].map((t) => t.at - this.t).sort((a, b) => a - b);
  }
}

/** Makes a FakeWebSocket class whose instances are collected in `sockets`. */
export function makeFakeWebSocket() {
  const sockets = [];
  class FakeWebSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.protocol = '';
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      sockets.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error('InvalidStateError: not open');
      this.sent.push(data);
    }
    close(code, reason) {
      this.closedWith = { code, reason };
      this.readyState = 3;
    }
    // ---- server side, driven by the test ----
    serverOpen(protocol = '') {
      this.protocol = protocol;
      this.readyState = 1;
      this.onopen && this.onopen({});
    }
    serverSend(msg) {
      this.onmessage && this.onmessage({ data: typeof msg === 'string' ? msg : JSON.stringify(msg) });
    }
    serverClose(code = 1006, reason = '') {
      this.readyState = 3;
      this.onerror && this.onerror({});
      this.onclose && this.onclose({ code, reason });
    }
    /** Parsed client requests sent on this socket. */
    requests() {
      return this.sent.map((s) => JSON.parse(s));
    }
    /** Acks every subscribe/unsubscribe sent so far and not acked yet. */
    ackAll() {
      this._acked = this._acked || 0;
      const reqs = this.requests();
      for (; this._acked < reqs.length; this._acked++) {
        const r = reqs[this._acked];
        if (r.op === 'subscribe' || r.op === 'unsubscribe') {
          this.serverSend({ type: r.op === 'subscribe' ? 'subscribed' : 'unsubscribed', id: r.id, symbols: r.symbols, channels: r.channels });
        } else if (r.op === 'ping') this.serverSend({ type: 'pong', id: r.id });
      }
    }
  }
  return { FakeWebSocket, sockets };
}

/** Lets pending promise callbacks run. */
export function flush() {
  return new Promise((r) => setImmediate(r));
}
