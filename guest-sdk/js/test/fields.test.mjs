// Unit tests of the SDK's pure parts, under Node (no component needed):
//   node --test guest-sdk/js/test/
// The messages are the Rust SDK's (guest-sdk/src/fields.rs, object.rs tests).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Fields, isDns1035Label, isQuantity } from '../src/fields.js';
import { KubeObject, base64Decode, base64Encode } from '../src/object.js';
import { PluginError } from '../src/errors.js';

const refusal = (f) => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof PluginError, `not a PluginError: ${e}`);
    return e;
  }
  assert.fail('did not throw');
};

test('errors name the field and value', () => {
  const f = new Fields('spec', { replicas: 'three', engine: 'oracle', storage: 'lots' });
  let e = refusal(() => f.int('replicas'));
  assert.equal(e.message, 'spec.replicas must be an integer, got "three"');
  assert.equal(e.field, 'spec.replicas');
  e = refusal(() => f.oneOf('engine', ['postgres', 'mysql']));
  assert.equal(e.message, 'spec.engine must be one of postgres, mysql, got "oracle"');
  e = refusal(() => f.str('version'));
  assert.equal(e.message, 'spec.version is required');
  e = refusal(() => f.quantity('storage'));
  assert.equal(e.message, 'spec.storage must be a quantity such as 20Gi, got "lots"');
});

test('nested objects keep their path; lists name the item', () => {
  const f = new Fields('spec', { autoscaling: { minReplicas: 'x' }, tags: ['a', 2] });
  const auto = f.optObject('autoscaling');
  assert.equal(refusal(() => auto.optInt('minReplicas')).message, 'spec.autoscaling.minReplicas must be an integer, got "x"');
  assert.equal(refusal(() => f.optStrList('tags')).message, 'spec.tags[1] must be a string, got 2');
  assert.equal(refusal(() => new Fields('spec', { r: 9 }).intIn('r', 1, 5)).message, 'spec.r must be between 1 and 5, got 9');
  assert.equal(refusal(() => new Fields('spec', { b: 'yes' }).optBool('b')).message, 'spec.b must be true or false, got "yes"');
  assert.equal(new Fields('spec', { n: null }).optInt('n'), undefined);
  assert.equal(new Fields('spec', undefined).optStr('x'), undefined);
  const long = refusal(() => new Fields('spec', { s: 'x'.repeat(100) }).int('s')).message;
  assert.equal(long, `spec.s must be an integer, got "${'x'.repeat(56)}...`);
});

test('dns labels and quantities', () => {
  assert.ok(isDns1035Label('orders-2', 63));
  for (const bad of ['', '2x', 'Orders', 'a-', 'a_b', 'a'.repeat(64)]) assert.ok(!isDns1035Label(bad, 63), bad);
  assert.ok(!isDns1035Label('abcdef', 5));
  for (const ok of ['20Gi', '1', '1.5', '500m', '1e3', '+2Ki', '.5']) assert.ok(isQuantity(ok), ok);
  for (const bad of ['', 'Gi', '20GB', 'lots', '1e', '1.2.3']) assert.ok(!isQuantity(bad), bad);
});

test('base64 as the Rust SDK', () => {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  for (const text of ['', 'f', 'fo', 'foo', 'foob', 'fooba', 'foobar', 'p@ss/w+rd']) {
    assert.equal(dec.decode(base64Decode(base64Encode(enc.encode(text)))), text);
  }
  assert.equal(base64Encode(enc.encode('foobar')), 'Zm9vYmFy');
  assert.equal(base64Encode(enc.encode('fo')), 'Zm8=');
  assert.equal(base64Decode('!!'), undefined);
  for (const t of ['Zm8', 'Zm8=', 'Zm8==', 'Zm8===', 'Zm9=']) assert.equal(dec.decode(base64Decode(t)), 'fo', t);
  for (const t of ['Zm8=Zm8=', 'Zm 8=', 'Zm8-', 'Z']) assert.equal(base64Decode(t), undefined, t);
});

test('builder keeps key order', () => {
  const o = new KubeObject('v1', 'ConfigMap', 'x').withNamespace('ns').withLabel('a', '1').with('data', { k: 'v' });
  assert.equal(
    JSON.stringify(o),
    '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"ns","labels":{"a":"1"}},"data":{"k":"v"}}',
  );
  assert.equal(o.namespace(), 'ns');
  assert.deepEqual(o.labels(), [['a', '1']]);
  assert.equal(refusal(() => KubeObject.fromValue('composite', [1])).message, 'composite must be a JSON object');
});

test('utf8 as TextEncoder / strict TextDecoder', async () => {
  const utf8 = await import('../src/utf8.js');
  for (const t of ['', 'abc', 'héllo', '€', '😀 x', 'a\u{10ffff}']) {
    assert.deepEqual(utf8.encode(t), new TextEncoder().encode(t), t);
    assert.equal(utf8.byteLength(t), new TextEncoder().encode(t).length, t);
    assert.equal(utf8.decode(new TextEncoder().encode(t)), t);
  }
  for (const bad of [[0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xc0, 0x80]]) {
    assert.equal(utf8.decode(Uint8Array.from(bad)), undefined, String(bad));
  }
});
