#!/usr/bin/env node
// Benchmark harness: starts each contender on its own port, loads every route with
// autocannon (the seed guide's method) and wrk, measures server CPU per request, peak
// RSS per worker and the spread over workers from /proc, and writes JSON, Markdown and
// an SVG chart under bench/results/. `node bench.js --help` lists the flags.
'use strict';

const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const http = require('http');
const autocannon = require('autocannon');
const { renderSvg } = require('./chart');

const ROOT = path.resolve(__dirname, '..');
const ALL_ROUTES = ['/', '/health', '/heavy'];
const ALL_CONTENDERS = ['preforkd', 'preforkd-1w', 'express', 'express-cluster', 'nginx'];
const ALL_TOOLS = ['autocannon', 'wrk'];

function usage() {
  console.log(`usage: node bench/bench.js [options]
  --duration S       seconds per measurement (default 5; the seed used 10)
  --connections N    concurrent connections (default 30, as the seed)
  --routes LIST      comma-separated, from ${ALL_ROUTES.join(',')} (default all)
  --contenders LIST  comma-separated, from ${ALL_CONTENDERS.join(',')} (default all)
  --tools LIST       autocannon,wrk (default both)
  --no-scaling       skip the /heavy scaling run over 1..N workers
  --smoke            1 s runs of /health only, no scaling (what CI runs)
  --preforkd PATH    the binary (default build/preforkd)
  --out DIR          where results go (default bench/results)`);
}

function parseArgs(argv) {
  const o = {
    duration: 5, connections: 30, routes: ALL_ROUTES, contenders: ALL_CONTENDERS,
    tools: ALL_TOOLS, scaling: true, smoke: false,
    preforkd: path.join(ROOT, 'build', 'preforkd'), out: path.join(__dirname, 'results'),
  };
  const list = (v, allowed, name) => {
    const items = v.split(',').map((s) => s.trim()).filter(Boolean);
    for (const i of items) if (!allowed.includes(i)) throw new Error(`unknown ${name} '${i}'`);
    return items;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--duration') o.duration = Number(next());
    else if (a === '--connections') o.connections = Number(next());
    else if (a === '--routes') o.routes = list(next(), ALL_ROUTES, 'route');
    else if (a === '--contenders') o.contenders = list(next(), ALL_CONTENDERS, 'contender');
    else if (a === '--tools') o.tools = list(next(), ALL_TOOLS, 'tool');
    else if (a === '--no-scaling') o.scaling = false;
    else if (a === '--smoke') o.smoke = true;
    else if (a === '--preforkd') o.preforkd = path.resolve(next());
    else if (a === '--out') o.out = path.resolve(next());
    else if (a === '--help' || a === '-h') { usage(); process.exit(0); }
    else throw new Error(`unknown option '${a}'`);
  }
  if (o.smoke) { o.duration = 1; o.routes = ['/health']; o.scaling = false; }
  if (!(o.duration > 0) || !(o.connections > 0)) throw new Error('duration and connections must be positive');
  return o;
}

// ---- /proc ------------------------------------------------------------------------

const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on every Linux we run on

function children(pid) {
  const out = [];
  let tasks = [];
  try { tasks = fs.readdirSync(`/proc/${pid}/task`); } catch { return out; }
  for (const t of tasks) {
    try {
      const s = fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      if (s) out.push(...s.split(/\s+/).map(Number));
    } catch { /* task gone */ }
  }
  return out;
}

function tree(pid) {
  const all = [pid];
  for (let i = 0; i < all.length; i++) all.push(...children(all[i]));
  return all;
}

function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch { return 0; }
}

function statusKb(pid, key) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) : 0;
  } catch { return 0; }
}

// The processes that serve: the children when there are any (prefork servers), else
// the process itself (a single Node process).
function servingPids(root) {
  const kids = tree(root).slice(1);
  return kids.length ? kids : [root];
}

// ---- contenders ---------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

function tmpDir(name) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `preforkd-bench-${name}-`));
}

function preforkdSpec(o, workers) {
  return {
    routes: ALL_ROUTES,
    start(port) {
      const dir = tmpDir('preforkd');
      const conf = path.join(dir, 'preforkd.yaml');
      // The shipped configuration with only the port (and worker count) changed.
      let text = fs.readFileSync(path.join(ROOT, 'conf', 'preforkd.yaml'), 'utf8');
      text = text.replace(/^( *- )127\.0\.0\.1:4400$/m, `$1127.0.0.1:${port}`);
      if (workers) text = text.replace(/^workers: auto$/m, `workers: ${workers}`);
      fs.writeFileSync(conf, text);
      return { cmd: o.preforkd, args: ['-c', conf], dir };
    },
  };
}

function nodeSpec(script, env = {}) {
  return {
    routes: ALL_ROUTES,
    start(port) {
      return { cmd: process.execPath, args: [path.join(__dirname, 'servers', script)], env: { PORT: String(port), ...env } };
    },
  };
}

const nginxSpec = {
  routes: ['/health'],
  start(port) {
    const dir = tmpDir('nginx');
    const conf = path.join(dir, 'nginx.conf');
    fs.writeFileSync(conf, `worker_processes auto;
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port} reuseport;
    location = /health {
      default_type application/json;
      return 200 '{"status":"healthy"}';
    }
  }
}
`);
    return { cmd: 'nginx', args: ['-c', conf, '-p', dir], dir };
  },
};

function contenderSpecs(o) {
  return {
    'preforkd': preforkdSpec(o, null),
    'preforkd-1w': preforkdSpec(o, 1),
    'express': nodeSpec('express-single.js'),
    'express-cluster': nodeSpec('express-cluster.js'),
    'nginx': nginxSpec,
  };
}

const running = new Set();
const generators = new Set(); // wrk processes in flight, stopped on Ctrl-C as well

function get(port, urlPath) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => { req.destroy(); resolve(0); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startContender(name, spec) {
  const port = await freePort();
  const s = spec.start(port);
  const log = [];
  const child = spawn(s.cmd, s.args, {
    env: { ...process.env, ...(s.env || {}) }, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server = { name, port, child, dir: s.dir, log, exited: false };
  running.add(server);
  child.stdout.on('data', (d) => log.push(String(d)));
  child.stderr.on('data', (d) => log.push(String(d)));
  child.on('error', (e) => { log.push(String(e)); server.exited = true; });
  child.on('exit', () => { server.exited = true; });
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline && !server.exited) {
    if ((await get(port, spec.routes.includes('/health') ? '/health' : '/')) === 200) {
      await sleep(300); // let every worker of a prefork server reach its accept loop
      return server;
    }
    await sleep(50);
  }
  await stopContender(server);
  throw new Error(`${name} ${server.exited ? 'exited' : 'did not answer within 15 s'}: ${log.join('').trim().split('\n').slice(-3).join(' | ') || 'no output'}`);
}

async function stopContender(server) {
  if (!server.exited) {
    try { process.kill(-server.child.pid, 'SIGTERM'); } catch { /* gone */ }
    const deadline = Date.now() + 5000;
    while (!server.exited && Date.now() < deadline) await sleep(20);
    if (!server.exited) try { process.kill(-server.child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  running.delete(server);
  if (server.dir) fs.rmSync(server.dir, { recursive: true, force: true });
}

function stopAllNow() {
  for (const g of generators) try { g.kill('SIGKILL'); } catch { /* gone */ }
  for (const s of running) {
    try { process.kill(-s.child.pid, 'SIGKILL'); } catch { /* gone */ }
    if (s.dir) fs.rmSync(s.dir, { recursive: true, force: true });
  }
  running.clear();
}

// ---- load generators -------------------------------------------------------------------

async function runAutocannon(url, o) {
  const r = await autocannon({ url, connections: o.connections, duration: o.duration });
  return {
    requests: r.requests.total,
    rps: r.requests.average,
    latency_ms: { avg: r.latency.average, p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max },
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
  };
}

function toMs(v) {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v);
  if (!m) return null;
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]];
}

function runWrk(url, o) {
  return new Promise((resolve, reject) => {
    const w = spawn('wrk', ['-t1', `-c${o.connections}`, `-d${o.duration}s`, '--latency', url]);
    generators.add(w);
    let out = '';
    w.stdout.on('data', (d) => { out += d; });
    w.on('error', reject);
    w.on('exit', (code) => {
      generators.delete(w);
      if (code !== 0) return reject(new Error(`wrk exited ${code}`));
      const lat = /Latency\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
      const pct = (p) => { const m = new RegExp(`\\s${p}%\\s+(\\S+)`).exec(out); return m ? toMs(m[1]) : null; };
      const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
      resolve({
        requests: Number(/(\d+) requests in/.exec(out)[1]),
        rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]),
        latency_ms: { avg: toMs(lat[1]), p50: pct(50), p99: pct(99), max: toMs(lat[3]) },
        errors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
        non2xx: non2xx ? Number(non2xx[1]) : 0,
      });
    });
  });
}

async function measure(server, route, tool, o) {
  const url = `http://127.0.0.1:${server.port}${route}`;
  const pids = tree(server.child.pid);
  const serving = servingPids(server.child.pid);
  const before = pids.map(cpuSeconds);
  const servingBefore = serving.map(cpuSeconds);
  const r = tool === 'wrk' ? await runWrk(url, o) : await runAutocannon(url, o);
  const cpu = pids.map(cpuSeconds).reduce((a, v, i) => a + v - before[i], 0);
  const shares = serving.map((p, i) => cpuSeconds(p) - servingBefore[i]);
  const total = shares.reduce((a, b) => a + b, 0);
  return {
    ...r,
    server_cpu_s: Number(cpu.toFixed(2)),
    cpu_us_per_req: r.requests ? (cpu / r.requests) * 1e6 : null,
    // Each serving process's share of the serving CPU time: even is 100/N each.
    spread_pct: total > 0 ? shares.map((s) => Math.round((s / total) * 100)) : [],
  };
}

function peakRss(server) {
  const pids = servingPids(server.child.pid);
  const hwm = pids.map((p) => statusKb(p, 'VmHWM'));
  return { workers: pids.length, peak_rss_kb_max: Math.max(...hwm), peak_rss_kb: hwm };
}

// ---- report ----------------------------------------------------------------------------

function versionOf(cmd, args) {
  // Some tools print their version on stderr (nginx -v), some exit non-zero (wrk -v).
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) return 'not found';
  return `${r.stdout || ''}${r.stderr || ''}`.trim().split('\n')[0];
}

function machine(o) {
  const affinity = versionOf('nproc', []);
  return {
    date: new Date().toISOString(),
    hostname: os.hostname(),
    cpu_model: os.cpus()[0] ? os.cpus()[0].model : 'unknown',
    online_cpus: os.cpus().length,
    usable_cpus: Number(affinity) || os.cpus().length,
    memory_gib: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    kernel: os.release(),
    versions: {
      preforkd: versionOf(o.preforkd, ['--version']).replace(/^preforkd /, ''),
      node: process.version,
      autocannon: require('autocannon/package.json').version,
      express: require('express/package.json').version,
      wrk: versionOf('wrk', ['-v']).split(' [')[0].replace(/^wrk /, ''),
      nginx: versionOf('nginx', ['-v']).replace(/^nginx version: nginx\//, ''),
    },
  };
}

const fmt = (v, d = 0) => (v === null || v === undefined || Number.isNaN(v) ? '–' : Number(v).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));

function ratio(a, b) {
  return a && b ? `${(a / b).toFixed(2)}×` : '–';
}

function markdown(report) {
  const lines = [];
  const m = report.machine;
  lines.push(`# preforkd benchmark, ${m.date}`, '');
  lines.push(`Machine: ${m.cpu_model}, ${m.usable_cpus} usable of ${m.online_cpus} CPUs, ${m.memory_gib} GiB, Linux ${m.kernel}.`);
  lines.push(`Versions: ${Object.entries(m.versions).map(([k, v]) => `${k} ${v}`).join('; ')}.`);
  lines.push(`Method: ${report.options.connections} connections, ${report.options.duration} s per run; load generator on the same machine as the servers (autocannon in the harness's process, wrk -t1).`, '');
  lines.push('| contender | route | tool | req/s | avg ms | p50 ms | p99 ms | max ms | errors | non-2xx | CPU µs/req | peak RSS/worker | spread % | vs Node cluster | vs nginx |');
  lines.push('|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|');
  const find = (c, route, tool) => report.runs.find((r) => r.contender === c && r.route === route && r.tool === tool && !r.error);
  for (const r of report.runs) {
    if (r.error) {
      lines.push(`| ${r.contender} | ${r.route} | ${r.tool} | failed: ${r.error} |||||||||||||`);
      continue;
    }
    const node = find('express-cluster', r.route, r.tool);
    const ngx = find('nginx', r.route, r.tool);
    const rss = report.memory[r.contender];
    lines.push(`| ${r.contender} | ${r.route} | ${r.tool} | ${fmt(r.rps)} | ${fmt(r.latency_ms.avg, 2)} | ${fmt(r.latency_ms.p50, 2)} | ${fmt(r.latency_ms.p99, 2)} | ${fmt(r.latency_ms.max, 1)} | ${r.errors} | ${r.non2xx} | ${fmt(r.cpu_us_per_req, 1)} | ${rss ? `${fmt(rss.peak_rss_kb_max / 1024, 1)} MB` : '–'} | ${r.spread_pct.join('/')} | ${r.contender === 'express-cluster' ? '1.00×' : ratio(r.rps, node && node.rps)} | ${ratio(r.rps, ngx && ngx.rps)} |`);
  }
  for (const f of report.failures) lines.push('', `**${f.contender} failed to start:** ${f.error}`);
  // The timing check that used to be a unit test: /heavy loops 10× as many times as /,
  // so its CPU per request is about 10× (a little less: the HTTP work is the same).
  // About 1× would mean the compiler folded the loop (test_handlers guards the code).
  const loop = [];
  for (const c of ['preforkd', 'preforkd-1w']) {
    for (const tool of report.options.tools) {
      const sum = find(c, '/', tool);
      const heavy = find(c, '/heavy', tool);
      if (sum && heavy && sum.cpu_us_per_req && heavy.cpu_us_per_req)
        loop.push(`| ${c} | ${tool} | ${fmt(sum.cpu_us_per_req, 1)} | ${fmt(heavy.cpu_us_per_req, 1)} | ${ratio(heavy.cpu_us_per_req, sum.cpu_us_per_req)} |`);
    }
  }
  if (loop.length) {
    lines.push('', '## Loop cost: CPU per request, /heavy against / (expect about 10×)', '', '| contender | tool | / µs/req | /heavy µs/req | ratio |', '|---|---|---:|---:|---:|');
    lines.push(...loop);
  }
  if (report.scaling.length) {
    lines.push('', '## Scaling: preforkd /heavy by worker count (wrk)', '', '| workers | req/s | per worker | p99 ms |', '|---:|---:|---:|---:|');
    for (const s of report.scaling) lines.push(`| ${s.workers} | ${fmt(s.rps)} | ${fmt(s.rps / s.workers)} | ${fmt(s.p99_ms, 2)} |`);
  }
  lines.push('');
  return lines.join('\n');
}

// ---- main ------------------------------------------------------------------------------

async function main() {
  let o;
  try { o = parseArgs(process.argv.slice(2)); } catch (e) { console.error(`bench: ${e.message}`); usage(); process.exit(2); }
  process.on('SIGINT', () => { console.error('\ninterrupted: stopping every server started'); stopAllNow(); process.exit(130); });
  process.on('SIGTERM', () => { stopAllNow(); process.exit(143); });

  const specs = contenderSpecs(o);
  const report = { machine: machine(o), options: { ...o, preforkd: path.relative(ROOT, o.preforkd) }, runs: [], memory: {}, failures: [], scaling: [] };
  console.log(`bench: ${o.contenders.join(', ')} × ${o.routes.join(' ')} × ${o.tools.join('+')}, ${o.duration} s each, ${o.connections} connections`);

  for (const name of o.contenders) {
    const spec = specs[name];
    const routes = o.routes.filter((r) => spec.routes.includes(r));
    if (!routes.length) continue;
    let server;
    try {
      server = await startContender(name, spec);
    } catch (e) {
      console.log(`  ${name}: FAILED to start: ${e.message}`);
      report.failures.push({ contender: name, error: e.message });
      continue;
    }
    for (const route of routes) {
      for (const tool of o.tools) {
        try {
          const r = await measure(server, route, tool, o);
          report.runs.push({ contender: name, route, tool, ...r });
          console.log(`  ${name.padEnd(16)} ${route.padEnd(8)} ${tool.padEnd(10)} ${fmt(r.rps).padStart(9)} req/s  p99 ${fmt(r.latency_ms.p99, 2)} ms  ${fmt(r.cpu_us_per_req, 1)} µs/req  errors ${r.errors}  non-2xx ${r.non2xx}`);
        } catch (e) {
          report.runs.push({ contender: name, route, tool, error: e.message });
          console.log(`  ${name} ${route} ${tool}: FAILED: ${e.message}`);
        }
      }
    }
    report.memory[name] = peakRss(server);
    await stopContender(server);
  }

  if (o.scaling && o.contenders.includes('preforkd')) {
    const n = report.machine.usable_cpus;
    for (let w = 1; w <= n; w++) {
      try {
        const server = await startContender(`preforkd-${w}w`, preforkdSpec(o, w));
        const r = await runWrk(`http://127.0.0.1:${server.port}/heavy`, o);
        report.scaling.push({ workers: w, rps: r.rps, p99_ms: r.latency_ms.p99 });
        console.log(`  scaling /heavy ${w} worker(s): ${fmt(r.rps)} req/s`);
        await stopContender(server);
      } catch (e) {
        console.log(`  scaling ${w} worker(s): FAILED: ${e.message}`);
      }
    }
  }

  fs.mkdirSync(o.out, { recursive: true });
  const stem = path.join(o.out, `${report.machine.date.replace(/[:.]/g, '-')}${o.smoke ? '-smoke' : ''}`);
  const md = markdown(report);
  fs.writeFileSync(`${stem}.json`, `${JSON.stringify(report, null, 2)}\n`);
  fs.writeFileSync(`${stem}.md`, md);
  fs.writeFileSync(`${stem}.svg`, renderSvg(report));
  console.log(`\n${md}\nwritten: ${stem}.{json,md,svg}`);
  const failed = report.failures.length + report.runs.filter((r) => r.error).length;
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error(e); stopAllNow(); process.exit(1); });
