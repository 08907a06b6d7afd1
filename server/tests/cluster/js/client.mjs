// Test-only: the real client library (server/web/tickwire.js) against a Tickwire URL, here
// HAProxy in front of gateways. Prints one JSON line per event on stdout: state changes,
// gaps, conflation, and every market-data message (type, symbol, seq, chan_seq). Runs
// until stdin closes (the Rust test owns its lifetime).
//
//   node client.mjs ws://127.0.0.1:PORT/ws SYM0001,SYM0002
import WebSocket from 'ws';
import { TickwireClient } from '../../../web/tickwire.js';

const [url, symbols] = process.argv.slice(2);
const out = (ev) => process.stdout.write(JSON.stringify(ev) + '\n');
const client = new TickwireClient({
  url,
  WebSocket,
  backoff: { initialMs: 100, maxMs: 1000, jitter: 0.2 },
  heartbeatMs: 0,
});
client.on('state', (s) => out({ ev: 'state', state: s.state, reconnect: !!s.reconnect }));
client.on('gap', (g) => out({ ev: 'gap', ...g }));
client.on('conflation', (c) => out({ ev: 'conflation', ...c }));
client.on('message', (m) => {
  if (m.type === 'quote' || m.type === 'trade' || m.type === 'book' || m.type === 'status') {
    out({ ev: 'message', type: m.type, symbol: m.symbol, seq: m.seq, chan_seq: m.chan_seq, state: m.state });
  }
});
client.connect();
client.subscribe(symbols.split(','), ['quote', 'trade', 'book']).catch((e) => out({ ev: 'error', message: String(e) }));
process.stdin.on('end', () => { client.close(); process.exit(0); });
process.stdin.resume();
