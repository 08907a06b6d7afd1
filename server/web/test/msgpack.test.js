// Unit tests of the MessagePack codec in tickwire.js, against vectors produced by an
// independent implementation (Python's msgpack library).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { unpackMsgpack, msgpackCodec } from '../tickwire.js';

const hex = (h) => Uint8Array.from(h.match(/../g).map((b) => parseInt(b, 16)));

const QUOTE =
  '8aa474797065a571756f7465a673796d626f6ca753594d30303031a37365712aa86368616e5f73657107a27473cf18eb57d032c04d68a7726563765f7473cf18eb57d032c04d68a3626964a63130312e3235a86269645f73697a65a3333030a361736bc0a861736b5f73697a65c0';

test('decodes a quote map exactly as JSON would', () => {
  const m = unpackMsgpack(hex(QUOTE));
  assert.deepEqual(m, JSON.parse('{"type":"quote","symbol":"SYM0001","seq":42,"chan_seq":7,"ts":1795625428153552232,"recv_ts":1795625428153552232,"bid":"101.25","bid_size":"300","ask":null,"ask_size":null}'));
});

test('decodes a batch with every value kind the server uses', () => {
  const batch = hex(
    '92' + QUOTE +
      '88a474797065a57472616465a57072696365a3312e35a36e6567fba3626967d3ffffff0000000000a166cb3ff8000000000000a174c3a3617272dc0014000102030405060708090a0b0c0d0e0f10111213a173d92878787878787878787878787878787878787878787878787878787878787878787878787878787878',
  );
  const v = msgpackCodec.decode(batch.buffer);
  assert.equal(v.length, 2);
  assert.deepEqual(v[1], { type: 'trade', price: '1.5', neg: -5, big: -(2 ** 40), f: 1.5, t: true, arr: [...Array(20).keys()], s: 'x'.repeat(40) });
});

test('rejects truncated and trailing data', () => {
  const q = hex(QUOTE);
  assert.throws(() => unpackMsgpack(q.subarray(0, q.length - 3)), /truncated/);
  const extra = new Uint8Array(q.length + 1);
  extra.set(q);
  assert.throws(() => unpackMsgpack(extra), /trailing/);
});

test('requests stay JSON text', () => {
  assert.equal(msgpackCodec.encode({ op: 'ping', id: 1 }), '{"op":"ping","id":1}');
  assert.equal(msgpackCodec.protocol, 'tickwire.msgpack.batch');
});
