import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { dmName, majorMinor } from './lv-device';

describe('dmName: the device-mapper name an LV must have', () => {
  const cases: [string, string, string][] = [
    ['vg0', 'vm1', 'vg0-vm1'],
    ['data-vg', 'vm-1', 'data--vg-vm--1'],
    ['vg', 'a--b', 'vg-a----b'],
    ['vg_x', 'lv.y', 'vg_x-lv.y'],
  ];
  for (const [vg, lv, name] of cases) {
    it(`${vg}/${lv} → ${name}`, () => assert.equal(dmName(vg, lv), name));
  }
  it('keeps two different LVs apart that a plain join would merge', () => {
    assert.notEqual(dmName('a-b', 'c'), dmName('a', 'b-c'));
  });
});

describe('majorMinor: Linux dev_t as /sys/dev/block names it', () => {
  const cases: [number, string][] = [
    [0x0700, '7:0'],
    [0xfd03, '253:3'],
    // minor 256 and up are split around the major's bits
    [0x10fd00, '253:256'],
    // a major above 4095 lives in the high word
    [0x1000 * 2 ** 32 + 0x0100, '4097:0'],
  ];
  for (const [rdev, expected] of cases) {
    it(`${rdev.toString(16)} → ${expected}`, () => assert.equal(majorMinor(rdev), expected));
  }
  it('agrees with the kernel for /dev/null (1:3)', () => {
    assert.equal(majorMinor(statSync('/dev/null').rdev), '1:3');
  });
});
