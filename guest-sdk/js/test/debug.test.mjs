// rustDebug against what Rust's `format!("{s:?}")` writes (rustc 1.9x,
// checked by printing these strings from a Rust program):
//   node --test guest-sdk/js/test/
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isEscapedByRust, rustDebug } from '../src/debug.js';

test('plain text is only quoted', () => {
  assert.equal(rustDebug('Orders'), '"Orders"');
  assert.equal(rustDebug('a b_'), '"a b_"');
  assert.equal(rustDebug(''), '""');
});

test('quotes, backslashes and the named escapes', () => {
  assert.equal(rustDebug('a\tb\r\n\\"\'\0'), String.raw`"a\tb\r\n\\\"'\0"`);
});

test('controls, invisible characters and combining marks as \\u{..}', () => {
  assert.equal(rustDebug('\u00a0\u200b\u2028\ufeff\u007f\u001b]0;x\u0007'), String.raw`"\u{a0}\u{200b}\u{2028}\u{feff}\u{7f}\u{1b}]0;x\u{7}"`);
  assert.equal(rustDebug('e\u0301'), String.raw`"e\u{301}"`);
  assert.equal(rustDebug('\u00ad\u0085'), String.raw`"\u{ad}\u{85}"`);
  assert.equal(rustDebug('\ue000\u{10ffff}\u0378'), String.raw`"\u{e000}\u{10ffff}\u{378}"`);
});

test('printable non-ASCII is kept', () => {
  assert.equal(rustDebug('日本\u{1f600}'), '"日本\u{1f600}"');
});

test('a lone surrogate is escaped', () => {
  assert.equal(rustDebug('a\ud800'), String.raw`"a\u{d800}"`);
});

test('the table: assigned symbols kept, tags and noncharacters escaped', () => {
  assert.equal(rustDebug('\u{1f600}\u{e0001}\u{fffe}\u{10fffd}'), String.raw`"😀\u{e0001}\u{fffe}\u{10fffd}"`);
  assert.equal(isEscapedByRust(0x41), false);
  assert.equal(isEscapedByRust(0x7f), true);
  assert.equal(isEscapedByRust(0x10ffff), true);
});
