// Unit tests of tickwire.js: reconnect with backoff and jitter, resubscribe, gap and
// conflation detection, request/ack promises, batching, books, tickets, heartbeat, and the
// decimal helpers. A fake WebSocket and a manual clock are injected, so these run in
// milliseconds and never touch the network. Run: node --test server/web/test/

import test from 'node:test';
import assert from 'node:assert/strict';
import {
  TickwireClient,
  TickwireError,
  State,
  ticketFetcher,
  backoffDelay,
  compareDecimal,
  subtractDecimal,
  parseDecimal,
  latencyMs,
  wallClockMs,
} from '../tickwire.js';
import { FakeClock, makeFakeWebSocket, flush } from '../testkit/fakes.js';

function setup(extra = {}) {
  const clock = new FakeClock();
  const { FakeWebSocket, sockets } = makeFakeWebSocket();
  const client = new TickwireClient({
    url: 'ws://test/ws',
    WebSocket: FakeWebSocket,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: clock.now,
    random: () => 0.5,
    heartbeatMs: 0,
    ...extra,
  });
  const events = { state: [], gap: [], conflation: [], error: [], quote: [], trade: [], book: [], status: [] };
  for (const k of Object.keys(events)) client.on(k, (e) => events[k].push(e));
  return { clock, sockets, client, events, last: () => sockets[sockets.length - 1] };
}

const quote = (symbol, chan_seq, bid = '1.00', ask = '1.01') => ({ type: 'quote', symbol, seq: chan_seq, chan_seq, ts: 1, recv_ts: 1, bid, bid_size: '1', ask, ask_size: '1' });
const trade = (symbol, chan_seq, price = '1.00') => ({ type: 'trade', symbol, seq: chan_seq, chan_seq, ts: 1, recv_ts: 1, price, size: '1', side: 'buy' });

test('backoffDelay grows exponentially, is capped, and jitters within bounds', () => {
  const cfg = { initialMs: 100, maxMs: 5000, factor: 2, jitter: 0.5 };
  assert.equal(backoffDelay(0, cfg, () => 1), 100);
  assert.equal(backoffDelay(0, cfg, () => 0), 50);
  assert.equal(backoffDelay(3, cfg, () => 1), 800);
  assert.equal(backoffDelay(3, cfg, () => 0), 400);
  assert.equal(backoffDelay(20, cfg, () => 1), 5000, 'capped at maxMs');
  assert.equal(backoffDelay(20, cfg, () => 0), 2500, 'jitter applies to the cap too');
  // Real randomness: always within [base*(1-jitter), base].
  const seen = new Set();
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(2, cfg);
    assert.ok(d >= 200 && d <= 400, `delay ${d} out of range`);
    seen.add(d);
  }
  assert.ok(seen.size > 10, 'jitter spreads the delays');
});

test('reconnects with growing backoff while the server is down, then connects', () => {
  const { clock, sockets, client, events } = setup({ backoff: { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 } });
  client.connect();
  assert.equal(client.state, State.CONNECTING);
  assert.equal(sockets.length, 1);
  const delays = [];
  for (let i = 0; i < 6; i++) {
    sockets[sockets.length - 1].serverClose(1006);
    assert.equal(client.state, State.RECONNECTING);
    const st = events.state[events.state.length - 1];
    assert.equal(st.state, State.RECONNECTING);
    assert.equal(st.code, 1006);
    delays.push(st.delayMs);
    const n = sockets.length;
    clock.advance(st.delayMs - 1);
    assert.equal(sockets.length, n, 'no new socket before the delay is over');
    clock.advance(1);
    assert.equal(sockets.length, n + 1, 'a new socket once the delay is over');
  }
  // random() = 0.5, jitter 0.5: 0.75 × (100, 200, 400, 800, 1000, 1000)
  assert.deepEqual(delays, [75, 150, 300, 600, 750, 750]);
  sockets[sockets.length - 1].serverOpen();
  assert.equal(client.state, State.OPEN);
});

test('backoff resets after a stable connection but not after a short-lived one', () => {
  const { clock, client, events, last } = setup({ stableMs: 5000, backoff: { initialMs: 100, maxMs: 10000, jitter: 0 } });
  client.connect();
  last().serverClose();
  clock.advance(100);
  last().serverClose();
  clock.advance(200);
  last().serverOpen();
  clock.advance(1000); // open only 1 s: not stable
  last().serverClose();
  assert.equal(events.state.at(-1).delayMs, 400, 'short-lived connection keeps growing the delay');
  clock.advance(400);
  last().serverOpen();
  clock.advance(6000); // stable
  last().serverClose(1001, 'going away');
  assert.equal(events.state.at(-1).delayMs, 100, 'stable connection resets the backoff');
});

test('subscribe resolves with the ack and the request carries depth and throttle', async () => {
  const { client, last } = setup();
  client.connect();
  last().serverOpen();
  const p = client.subscribe(['A', 'B'], ['quote', 'book'], { depth: 20, throttleMs: 100 });
  const [req] = last().requests();
  assert.deepEqual(req, { op: 'subscribe', id: req.id, symbols: ['A', 'B'], channels: ['quote', 'book'], depth: 20, throttle_ms: 100 });
  let resolved = false;
  p.then(() => (resolved = true));
  await flush();
  assert.equal(resolved, false, 'not resolved before the ack');
  last().serverSend({ type: 'subscribed', id: req.id, symbols: ['A', 'B'], channels: ['quote', 'book'] });
  const ack = await p;
  assert.equal(ack.type, 'subscribed');
});

test('a refused subscribe rejects with the server code and is forgotten', async () => {
  const { client, last, events } = setup();
  client.connect();
  last().serverOpen();
  const p = client.subscribe(['NOPE'], ['quote']);
  const req = last().requests()[0];
  last().serverSend({ type: 'error', id: req.id, code: 'unknown_symbol', message: 'unknown symbol NOPE', symbols: ['NOPE'] });
  await assert.rejects(p, (e) => e instanceof TickwireError && e.code === 'unknown_symbol');
  assert.deepEqual(client.subscriptions(), []);
  assert.equal(events.error.length, 1);
});

test('adding a channel resends the full channel set of the symbol', () => {
  const { client, last } = setup();
  client.connect();
  last().serverOpen();
  client.subscribe('A', ['quote', 'trade']);
  client.subscribe('A', ['book'], { depth: 15 });
  const reqs = last().requests();
  assert.deepEqual(reqs[1].channels, ['quote', 'trade', 'book']);
  assert.equal(reqs[1].depth, 15);
});

test('after a reconnect every subscription is resent and every stream is signalled as a gap', async () => {
  const { clock, client, events, last } = setup();
  client.connect();
  last().serverOpen();
  client.subscribe(['A', 'B'], ['quote', 'trade'], { throttleMs: 50 });
  client.subscribe(['C'], ['quote', 'trade', 'book'], { depth: 20, throttleMs: 50 });
  last().ackAll();
  assert.equal(events.gap.length, 0, 'no gap on the first connection');
  last().serverClose(1006);
  clock.advance(10_000);
  const ws = last();
  ws.serverOpen();
  const reqs = ws.requests();
  assert.equal(reqs.length, 2, 'one subscribe per (channels, depth, throttle) group');
  const byChannels = Object.fromEntries(reqs.map((r) => [r.channels.join(','), r]));
  assert.deepEqual(byChannels['quote,trade'].symbols, ['A', 'B']);
  assert.equal(byChannels['quote,trade'].throttle_ms, 50);
  assert.deepEqual(byChannels['quote,trade,book'].symbols, ['C']);
  assert.equal(byChannels['quote,trade,book'].depth, 20);
  const gaps = events.gap.map((g) => `${g.symbol}/${g.channel}/${g.reason}`).sort();
  assert.deepEqual(gaps, ['A/quote/reconnect', 'A/trade/reconnect', 'B/quote/reconnect', 'B/trade/reconnect', 'C/book/reconnect', 'C/quote/reconnect', 'C/trade/reconnect']);
  assert.equal(client.stats.reconnects, 1);
});

test('trade chan_seq jumps are gaps, quote jumps are conflation, in-order is silent', () => {
  const { client, events, last } = setup();
  client.connect();
  last().serverOpen();
  client.subscribe(['A'], ['quote', 'trade']);
  last().ackAll();
  const ws = last();
  ws.serverSend(trade('A', 1));
  ws.serverSend(trade('A', 2));
  ws.serverSend(trade('A', 5));
  assert.deepEqual(events.gap, [{ symbol: 'A', channel: 'trade', reason: 'seq_gap', expected: 3, received: 5, missed: 2 }]);
  ws.serverSend(quote('A', 1));
  ws.serverSend(quote('A', 2));
  ws.serverSend(quote('A', 9));
  assert.equal(events.gap.length, 1, 'quote jumps are not gaps');
  assert.deepEqual(events.conflation, [{ symbol: 'A', channel: 'quote', skipped: 6 }]);
  assert.equal(client.stats.conflated, 6);
  ws.serverSend(trade('A', 3));
  assert.equal(events.gap.at(-1).reason, 'seq_reset', 'a trade going backwards is reported');
});

test('chan_seq baselines restart after a reconnect (a restarted server counts from 1)', () => {
  const { clock, client, events, last } = setup();
  client.connect();
  last().serverOpen();
  client.subscribe(['A'], ['trade']);
  last().ackAll();
  last().serverSend(trade('A', 100));
  last().serverClose();
  clock.advance(10_000);
  last().serverOpen();
  last().ackAll();
  events.gap.length = 0;
  last().serverSend(trade('A', 1));
  last().serverSend(trade('A', 2));
  assert.deepEqual(events.gap, []);
});

test('subscribe while disconnected is sent on connect and resolves with its ack', async () => {
  const { clock, client, last } = setup();
  client.connect();
  last().serverClose();
  const p = client.subscribe('A', ['quote']);
  let done = false;
  p.then(() => (done = true));
  clock.advance(10_000);
  const ws = last();
  ws.serverOpen();
  assert.deepEqual(ws.requests().map((r) => r.symbols), [['A']]);
  await flush();
  assert.equal(done, false);
  ws.ackAll();
  await p;
});

test('a subscribe in flight when the connection drops resolves after the resync', async () => {
  const { clock, client, last } = setup();
  client.connect();
  last().serverOpen();
  const p = client.subscribe('A', ['quote']);
  last().serverClose();
  clock.advance(10_000);
  last().serverOpen();
  last().ackAll();
  await p;
  assert.deepEqual(client.subscriptions(), [{ symbol: 'A', channels: ['quote'], depth: 10, throttleMs: 0 }]);
});

test('batched frames (JSON arrays) are dispatched message by message', () => {
  const { client, events, last } = setup();
  client.connect();
  last().serverOpen();
  last().serverSend([quote('A', 1), trade('A', 1), quote('B', 1)]);
  assert.deepEqual(events.quote.map((q) => q.symbol), ['A', 'B']);
  assert.equal(events.trade.length, 1);
  assert.equal(client.stats.frames, 1);
  assert.equal(client.stats.messages, 3);
});

test('keeps the latest full book per symbol and forgets it on unsubscribe', () => {
  const { client, last } = setup();
  client.connect();
  last().serverOpen();
  client.subscribe('A', ['book']);
  last().ackAll();
  const b1 = { type: 'book', symbol: 'A', seq: 1, chan_seq: 1, ts: 1, recv_ts: 1, snapshot: true, bids: [['1.00', '5']], asks: [['1.02', '3']] };
  const b2 = { ...b1, seq: 2, chan_seq: 2, bids: [['1.01', '7']], asks: [['1.02', '1']] };
  last().serverSend(b1);
  last().serverSend(b2);
  assert.deepEqual(client.book('A').bids, [['1.01', '7']]);
  client.unsubscribe('A', ['book']);
  assert.equal(client.book('A'), undefined);
  assert.equal(last().requests().at(-1).op, 'unsubscribe');
  assert.deepEqual(client.subscriptions(), []);
});

test('getTicket is asked before every attempt and a failure backs off', async () => {
  let n = 0;
  const { clock, sockets, client, events, last } = setup({
    getTicket: async () => {
      n++;
      if (n === 2) throw new Error('auth down');
      return `t${n}`;
    },
  });
  client.connect();
  await flush();
  assert.equal(sockets[0].url, 'ws://test/ws?ticket=t1');
  last().serverClose();
  clock.advance(10_000); // attempt 2: ticket throws
  await flush();
  assert.equal(sockets.length, 1);
  assert.equal(client.state, State.RECONNECTING);
  assert.equal(events.error.at(-1).code, 'ticket_failed');
  clock.advance(10_000);
  await flush();
  assert.equal(sockets.length, 2);
  assert.equal(sockets[1].url, 'ws://test/ws?ticket=t3');
});

test('streams the server revokes leave the desired state and are not asked for again', async () => {
  const { client, events, last, clock } = setup();
  const revoked = [];
  client.on('revoked', (r) => revoked.push(r));
  client.connect();
  last().serverOpen();
  client.subscribe(['A', 'B'], ['quote', 'trade']);
  last().ackAll();
  await flush();
  last().serverSend({ type: 'unsubscribed', id: null, symbols: ['A'], channels: ['quote', 'trade'], reason: 'not_entitled' });
  last().serverSend({ type: 'unsubscribed', id: null, symbols: ['B'], channels: ['trade'], reason: 'not_entitled' });
  assert.deepEqual(revoked.map((r) => r.symbols), [['A'], ['B']]);
  assert.equal(revoked[0].reason, 'not_entitled');
  assert.deepEqual(
    client.subscriptions().map((s) => [s.symbol, s.channels]),
    [['B', ['quote']]],
  );
  // After a reconnect only what is still allowed is asked for.
  last().serverClose();
  clock.advance(10_000);
  last().serverOpen();
  const resub = last().requests().filter((r) => r.op === 'subscribe');
  assert.deepEqual(resub.map((r) => [r.symbols, r.channels]), [[['B'], ['quote']]]);
  assert.equal(events.error.length, 0);
});

test('ticketFetcher posts the credential and returns the ticket, or throws the reason', async () => {
  const calls = [];
  const answers = [
    { ok: true, status: 200, json: async () => ({ ticket: 'T1', user: 'alice', expires_in_ms: 30000 }) },
    { ok: false, status: 401, json: async () => ({ error: 'unauthorized', reason: 'token_expired', message: 'the token has expired' }) },
    { ok: false, status: 502, json: async () => { throw new SyntaxError('not json'); } },
  ];
  let token = 'tok-1';
  const get = ticketFetcher({
    credential: async () => token,
    fetch: async (url, init) => {
      calls.push([url, init.method, init.headers.Authorization]);
      return answers.shift();
    },
  });
  assert.equal(await get(), 'T1');
  token = 'tok-2';
  await assert.rejects(get(), (e) => e instanceof TickwireError && e.code === 'token_expired' && e.status === 401);
  await assert.rejects(get(), (e) => e.code === 'ticket_failed' && e.status === 502);
  assert.deepEqual(calls[0], ['/auth/ticket', 'POST', 'Bearer tok-1']);
  assert.equal(calls[1][2], 'Bearer tok-2');
  await assert.rejects(ticketFetcher({ credential: '' })(), (e) => e.code === 'credentials_missing');
});

test('a silent connection is dropped by the heartbeat and reconnected', () => {
  const { clock, client, events, sockets, last } = setup({ heartbeatMs: 1000, heartbeatTimeoutMs: 500 });
  client.connect();
  last().serverOpen();
  clock.advance(1000);
  assert.equal(last().requests().at(-1).op, 'ping');
  last().ackAll(); // pong in time: still open
  clock.advance(1000);
  assert.equal(client.state, State.OPEN);
  clock.advance(500); // second ping unanswered
  assert.equal(client.state, State.RECONNECTING);
  assert.equal(events.state.at(-1).reason, 'heartbeat timeout');
  assert.equal(sockets[0].closedWith.code, 4001);
});

test('a connect attempt that never opens times out and retries', () => {
  const { clock, client, sockets, events } = setup({ connectTimeoutMs: 2000 });
  client.connect();
  clock.advance(1999);
  assert.equal(client.state, State.CONNECTING);
  clock.advance(1);
  assert.equal(client.state, State.RECONNECTING);
  assert.equal(sockets[0].closedWith.code, 4000);
  clock.advance(events.state.at(-1).delayMs);
  assert.equal(sockets.length, 2);
  assert.equal(client.state, State.CONNECTING);
});

test('close() stops reconnecting and rejects pending requests', async () => {
  const { clock, client, sockets, last } = setup();
  client.connect();
  last().serverOpen();
  const ping = client.ping();
  client.close();
  await assert.rejects(ping, (e) => e.code === 'closed');
  assert.equal(client.state, State.CLOSED);
  clock.advance(60_000);
  assert.equal(sockets.length, 1);
});

test('a throwing handler does not break dispatch to the others', () => {
  const { client, events, last } = setup();
  client.on('quote', () => {
    throw new Error('boom');
  });
  client.connect();
  last().serverOpen();
  last().serverSend(quote('A', 1));
  assert.equal(events.quote.length, 1);
  assert.equal(events.error.at(-1).code, 'handler_error');
});

test('decimal helpers are exact', () => {
  assert.deepEqual(parseDecimal('101.25'), { units: 10125n, scale: 2 });
  assert.equal(compareDecimal('101.25', '101.3'), -1);
  assert.equal(compareDecimal('0.10', '0.1'), 0);
  assert.equal(compareDecimal('-1', '0.5'), -1);
  assert.equal(subtractDecimal('0.3', '0.1'), '0.2', 'no float error');
  assert.equal(subtractDecimal('100.00', '101.25'), '-1.25');
  assert.equal(subtractDecimal('99999999999999999.99', '0.01'), '99999999999999999.98');
  assert.throws(() => parseDecimal('1e5'));
  // The same-format fast path agrees with exact subtraction on random prices.
  for (let i = 0; i < 2000; i++) {
    const a = (Math.random() * 1000).toFixed(2).padStart(7, '0');
    const b = (Math.random() * 1000).toFixed(2).padStart(7, '0');
    const d = subtractDecimal(a, b);
    const expected = /^-/.test(d) ? -1 : /^[0.]+$/.test(d) ? 0 : 1;
    assert.equal(compareDecimal(a, b), expected, `${a} vs ${b}`);
  }
  assert.equal(compareDecimal('9.99', '10.0'), -1, 'different layouts take the exact path');
});

test('latency uses recv_ts in ns and sub-millisecond wall clock', () => {
  const now = wallClockMs();
  assert.ok(Math.abs(now - Date.now()) < 5);
  const recvNs = 1_764_000_000_123_456_789; // above 2^53, as the server sends it
  assert.ok(Math.abs(latencyMs({ recv_ts: recvNs }, recvNs + 2_500_000) - 2.5) < 0.001);
  assert.ok(Number.isNaN(latencyMs({})));
});

test('codecs are offered as subprotocols and the one the server picks decodes', () => {
  const seen = [];
  const binCodec = {
    name: 'fake-bin',
    protocol: 'tickwire.fake',
    binaryType: 'arraybuffer',
    encode: (obj) => 'BIN:' + JSON.stringify(obj),
    decode: (data) => {
      seen.push(data);
      return JSON.parse(data.slice(4));
    },
  };
  const { client, events, sockets, last } = setup({ codecs: [binCodec, jsonCodecForTest()] });
  client.connect();
  assert.deepEqual(sockets[0].protocols, ['tickwire.fake']);
  last().serverOpen('tickwire.fake');
  client.subscribe('A', ['quote']);
  assert.match(last().sent[0], /^BIN:/, 'requests are encoded with the picked codec');
  last().onmessage({ data: 'BIN:' + JSON.stringify(quote('A', 1)) });
  assert.equal(seen.length, 1);
  assert.equal(events.quote.length, 1);
  // A server that picks no subprotocol gets JSON.
  last().serverClose();
  const { client: c2, sockets: s2 } = setup({ codecs: [binCodec, jsonCodecForTest()] });
  c2.connect();
  s2[0].serverOpen('');
  c2.subscribe('A', ['quote']);
  assert.equal(JSON.parse(s2[0].sent[0]).op, 'subscribe');
});

function jsonCodecForTest() {
  return { name: 'json', protocol: null, binaryType: 'arraybuffer', encode: JSON.stringify, decode: (d) => JSON.parse(d) };
}

test('setThrottle resends every subscription with the new throttle', () => {
  const { client, last } = setup();
  client.connect();
  last().serverOpen();
  client.subscribe(['A', 'B'], ['quote']);
  client.subscribe(['C'], ['quote', 'book'], { depth: 20 });
  last().ackAll();
  const n = last().sent.length;
  client.setThrottle(250);
  const reqs = last().requests().slice(n);
  assert.equal(reqs.length, 2);
  assert.ok(reqs.every((r) => r.op === 'subscribe' && r.throttle_ms === 250));
  assert.deepEqual(reqs.flatMap((r) => r.symbols).sort(), ['A', 'B', 'C']);
  assert.equal(reqs.find((r) => r.symbols.includes('C')).depth, 20, 'depth is kept');
});

test('unsubscribe while disconnected is not resent and the symbol is not restored', async () => {
  const { clock, client, last } = setup();
  client.connect();
  last().serverOpen();
  client.subscribe(['A', 'B'], ['quote']);
  last().ackAll();
  last().serverClose();
  const p = client.unsubscribe('A');
  clock.advance(10_000);
  last().serverOpen();
  const reqs = last().requests();
  assert.deepEqual(reqs.map((r) => [r.op, r.symbols]), [['subscribe', ['B']]]);
  last().ackAll();
  await p;
});

test('request() sends any op with an id and resolves with the answer carrying it', async () => {
  const { client, last } = setup();
  client.connect();
  last().serverOpen();
  const p = client.request({ op: 'replay', dataset: 'x', speed: 10 });
  const req = last().requests()[0];
  assert.equal(req.op, 'replay');
  assert.equal(typeof req.id, 'number');
  last().serverSend({ type: 'replaying', id: req.id, dataset: 'x' });
  assert.equal((await p).type, 'replaying');
  const q = client.request({ op: 'replay', dataset: 'nope' });
  last().serverSend({ type: 'error', id: last().requests()[1].id, code: 'unknown_dataset', message: 'no such dataset' });
  await assert.rejects(q, (e) => e.code === 'unknown_dataset');
});

test('the default URL follows the page: wss: on an https: page, ws: on an http: page', () => {
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'location');
  try {
    for (const [protocol, expected] of [['https:', 'wss://md.example:8443/ws'], ['http:', 'ws://md.example:8443/ws']]) {
      Object.defineProperty(globalThis, 'location', { value: { protocol, host: 'md.example:8443' }, configurable: true });
      const { FakeWebSocket, sockets } = makeFakeWebSocket();
      const client = new TickwireClient({ WebSocket: FakeWebSocket, heartbeatMs: 0 });
      assert.equal(client.url, expected);
      client.connect();
      assert.equal(sockets[sockets.length - 1].url, expected, 'the socket is opened on that URL');
      client.close();
    }
  } finally {
    if (saved) Object.defineProperty(globalThis, 'location', saved);
    else delete globalThis.location;
  }
});
