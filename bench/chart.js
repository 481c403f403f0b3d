// SVG chart of a benchmark report: req/s and p99 per contender and route, drawn by hand
// (no chart library, no external service). Log scales, since nginx's /health and the
// Express /heavy differ by three orders of magnitude.
'use strict';

const COLORS = {
  'preforkd': '#1f77b4', 'preforkd-1w': '#6baed6', 'express': '#d62728',
  'express-cluster': '#ff9896', 'nginx': '#2ca02c',
};

const esc = (s) => String(s).replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' }[c]));

function pickRuns(report) {
  // One figure per contender and route: wrk's where there is one (it measures fast
  // servers properly), else autocannon's.
  const out = [];
  for (const r of report.runs) {
    if (r.error) continue;
    const i = out.findIndex((x) => x.contender === r.contender && x.route === r.route);
    if (i < 0) out.push(r);
    else if (r.tool === 'wrk') out[i] = r;
  }
  return out;
}

function panel(runs, value, title, unit, y0, width) {
  const routes = [...new Set(runs.map((r) => r.route))];
  const contenders = [...new Set(runs.map((r) => r.contender))];
  const vals = runs.map(value).filter((v) => v > 0);
  if (!vals.length) return { svg: '', height: 0 };
  const lo = Math.floor(Math.log10(Math.min(...vals)));
  const hi = Math.ceil(Math.log10(Math.max(...vals))) || lo + 1;
  const left = 200, right = 40, barH = 16, gap = 10;
  const plotW = width - left - right;
  const x = (v) => left + ((Math.log10(v) - lo) / Math.max(hi - lo, 1)) * plotW;
  const parts = [`<text x="${left}" y="${y0 + 18}" font-size="15" font-weight="bold">${esc(title)}</text>`];
  let y = y0 + 34;
  const top = y;
  for (const route of routes) {
    parts.push(`<text x="10" y="${y + 12}" font-size="13" font-weight="bold">GET ${esc(route)}</text>`);
    for (const c of contenders) {
      const r = runs.find((q) => q.route === route && q.contender === c);
      if (!r || !(value(r) > 0)) continue;
      const v = value(r);
      parts.push(`<text x="${left - 6}" y="${y + 12}" font-size="12" text-anchor="end">${esc(c)} (${esc(r.tool)})</text>`);
      parts.push(`<rect x="${left}" y="${y}" width="${Math.max(x(v) - left, 1).toFixed(1)}" height="${barH}" fill="${COLORS[c] || '#888'}"/>`);
      parts.push(`<text x="${(Math.max(x(v), left) + 4).toFixed(1)}" y="${y + 12}" font-size="11">${esc(v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2))} ${esc(unit)}</text>`);
      y += barH + 4;
    }
    y += gap;
  }
  for (let e = lo; e <= hi; e++) {
    const gx = x(10 ** e);
    parts.push(`<line x1="${gx.toFixed(1)}" y1="${top - 4}" x2="${gx.toFixed(1)}" y2="${y - gap}" stroke="#ccc" stroke-dasharray="2,3"/>`);
    parts.push(`<text x="${gx.toFixed(1)}" y="${y + 6}" font-size="10" text-anchor="middle" fill="#666">${esc((10 ** e).toLocaleString('en-US'))}</text>`);
  }
  return { svg: parts.join('\n'), height: y + 20 - y0 };
}

function renderSvg(report) {
  const width = 900;
  const runs = pickRuns(report);
  const a = panel(runs, (r) => r.rps, 'Requests per second (log scale; higher is better)', 'req/s', 40, width);
  const b = panel(runs, (r) => r.latency_ms.p99, 'p99 latency (log scale; lower is better)', 'ms', 40 + a.height, width);
  const height = 40 + a.height + b.height + 10;
  const m = report.machine;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="16" font-weight="bold">preforkd benchmark ${esc(m.date.slice(0, 10))}: ${esc(m.usable_cpus)} CPUs, ${esc(report.options.connections)} connections, ${esc(report.options.duration)} s per run</text>
${a.svg}
${b.svg}
</svg>
`;
}

module.exports = { renderSvg };
