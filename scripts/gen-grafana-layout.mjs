#!/usr/bin/env node
// Draws the layout of the Grafana dashboard (config/grafana/libvirt-volume-provisioner.json) as an
// SVG: each panel's gridPos as a box with its title and type, rows as bands. Drawn from the JSON, so
// the picture in docs/monitoring.md cannot drift from the dashboard (test/e2e/grafana-dashboard.spec.ts
// runs --check).
//
//   node scripts/gen-grafana-layout.mjs [--check]
//
//   --check   write nothing; exit 1 when docs/grafana-layout.svg is not what would be written
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DASHBOARD = join(ROOT, 'config', 'grafana', 'libvirt-volume-provisioner.json');
const SVG = join(ROOT, 'docs', 'grafana-layout.svg');
// Grafana's grid: 24 columns; a height unit is 30 px in Grafana, a column here 40 px.
const COL = 40;
const ROW = 30;
const GAP = 4;
const CHAR = 6.6; // average width of a 12 px sans-serif character, to cut titles that would overflow

const escape = (text) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fit = (text, width) => {
  const max = Math.floor((width - 12) / CHAR);
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
};

function render(dashboard) {
  const bottom = Math.max(...dashboard.panels.map(({ gridPos }) => gridPos.y + gridPos.h));
  const width = 24 * COL;
  const height = bottom * ROW + 28;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `  <rect width="${width}" height="${height}" fill="#111217"/>`,
    `  <text x="8" y="18" font-size="14" fill="#ccccdc">${escape(dashboard.title)} (uid ${escape(dashboard.uid)}): panel layout</text>`,
  ];
  for (const panel of dashboard.panels) {
    const { x, y, w, h } = panel.gridPos;
    const px = x * COL + GAP / 2;
    const py = 28 + y * ROW + GAP / 2;
    const pw = w * COL - GAP;
    const ph = h * ROW - GAP;
    if (panel.type === 'row') {
      out.push(
        `  <text x="${px + 4}" y="${py + ROW / 2 + 4}" font-size="13" font-weight="bold" fill="#ccccdc">${escape(panel.title)}</text>`,
      );
      continue;
    }
    out.push(
      `  <rect x="${px}" y="${py}" width="${pw}" height="${ph}" rx="3" fill="#181b1f" stroke="#34373c"/>`,
      `  <text x="${px + 6}" y="${py + 17}" font-size="12" fill="#ccccdc">${escape(fit(panel.title, pw))}</text>`,
      `  <text x="${px + 6}" y="${py + ph - 8}" font-size="10" fill="#8e8e8e">${escape(panel.type)}</text>`,
    );
    // What the panel plots: its series names (legend formats), when it fits.
    const legends = (panel.targets ?? []).map((t) => t.legendFormat).filter(Boolean);
    if (legends.length > 0 && ph > 3 * ROW) {
      out.push(
        `  <text x="${px + 6}" y="${py + 34}" font-size="10" fill="#6e9fff">${escape(fit(legends.join(' · '), pw * 1.15))}</text>`,
      );
    }
  }
  out.push('</svg>', '');
  return out.join('\n');
}

const svg = render(JSON.parse(readFileSync(DASHBOARD, 'utf8')));
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(SVG, 'utf8');
  } catch {
    // missing: out of date
  }
  if (current !== svg) {
    console.error('docs/grafana-layout.svg is out of date: run node scripts/gen-grafana-layout.mjs');
    process.exit(1);
  }
} else {
  writeFileSync(SVG, svg);
}
