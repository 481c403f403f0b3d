#!/usr/bin/env python3
"""CPU per request of the newer routes, side by side, alternated: /health of an older
build (bin/preforkd_old) against this one (bin/preforkd_new); a module's fixed-JSON
handler against /health; static files of 1 KiB, 64 KiB and 1 MiB against nginx serving
the same files (sendfile, tcp_nopush, 4 workers each). The server is pinned to SRV
(default CPUs 0-3, 4 workers), wrk to CLI (8-15). Runs from a directory holding bin/
(preforkd_old, preforkd_new, testmod_v1.so, wrk, nginx) and lib/, like the devbench
bundle (../shared/tools/devbench). Prints a table and writes $OUT/bench12.json.
  DUR=5 REPS=3 python3 static_modules.py    (ONLY=static: the static rows alone)"""
import json, os, re, subprocess, sys, tempfile, time, urllib.request
D = os.path.dirname(os.path.abspath(__file__))
OUT = os.environ.get("OUT", "/tmp")
DUR = int(os.environ.get("DUR", "5"))
REPS = int(os.environ.get("REPS", "3"))
ENV = dict(os.environ, LD_LIBRARY_PATH=f"{D}/lib")
T = tempfile.mkdtemp()
SRV = os.environ.get("SRV", "0-3")
CLI = os.environ.get("CLI", "8-15")
results = []
def say(*a):
    print(*a, flush=True)
from proccpu import tree, cpu_seconds as cpu
def wait_up(port, path):
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1).read(); return True
        except Exception:
            time.sleep(0.05)
    return False
def measure(name, pid, port, path, conns=64):
    pids = tree(pid); c0 = cpu(pids)
    out = subprocess.run(["taskset", "-c", CLI, f"{D}/bin/wrk", "-t4", f"-c{conns}", f"-d{DUR}", "--latency",
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, env=ENV).stdout
    c1 = cpu(pids)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+\w+)", out).group(1)
    err = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r = dict(contender=name, path=path, rps=round(rps), p99=p99, cpu_us_per_req=round((c1 - c0) / total * 1e6, 2),
             non2xx=int(err.group(1)) if err else 0)
    results.append(r)
    say(f"{name:16} {path:24} rps={r['rps']:>9} p99={p99:>8} cpu/req={r['cpu_us_per_req']:>6} us non2xx={r['non2xx']}")
def start(argv, port, path):
    p = subprocess.Popen(["taskset", "-c", SRV] + argv, stdout=subprocess.DEVNULL, stderr=open(f"{T}/log", "a"), env=ENV)
    if not wait_up(port, path):
        say("did not start:", argv); p.kill(); return None
    return p
def stop(p):
    p.terminate()
    try: p.wait(5)
    except Exception: p.kill()
www = f"{T}/www"; os.makedirs(f"{www}/static")
for name, size in (("1k.bin", 1024), ("64k.bin", 65536), ("1m.bin", 1 << 20)):
    with open(f"{www}/static/{name}", "wb") as f: f.write(os.urandom(size))
def pf(binary, port, extra=""):
    conf = f"{T}/pf{port}.yaml"
    open(conf, "w").write(f"listen: 127.0.0.1:{port}\nworkers: 4\naffinity: auto\nlog_level: warn\n{extra}")
    return start([f"{D}/bin/{binary}", "-c", conf], port, "/health")
ROUTES = (f"modules:\n  t: {{path: {D}/bin/testmod_v1.so}}\nroutes:\n  - {{path: /health, handler: health}}\n"
          f"  - {{path: /version, handler: t.version}}\n  - {{path: /static/, handler: static, root: {www}/static}}\n")
port = 9000
ONLY = os.environ.get("ONLY", "")
say(f"== /health before (session start) and after; DUR={DUR}s, 64 connections")
for rep in range(REPS if not ONLY else 0):
    for b in ("preforkd_old", "preforkd_new"):
        port += 1; p = pf(b, port)
        if p: measure(b, p.pid, port, "/health"); stop(p)
say("== a module's fixed JSON against /health (new)")
for rep in range(REPS if not ONLY else 0):
    port += 1; p = pf("preforkd_new", port, ROUTES)
    if p:
        measure("health", p.pid, port, "/health"); measure("module", p.pid, port, "/version"); stop(p)
say("== static files against nginx (4 workers each)")
ngconf = f"{T}/nginx.conf"
for rep in range(2):
    for f in ("1k.bin", "64k.bin", "1m.bin"):
        port += 1; p = pf("preforkd_new", port, ROUTES)
        if p: measure("preforkd", p.pid, port, f"/static/{f}"); stop(p)
        port += 1
        open(ngconf, "w").write(f"""user root; worker_processes 4; worker_cpu_affinity auto; pid {T}/ng.pid; error_log {T}/ng.err;
events {{ worker_connections 4096; }}
http {{ access_log off; sendfile on; client_body_temp_path {T}/cb; proxy_temp_path {T}/px;
  fastcgi_temp_path {T}/fc; uwsgi_temp_path {T}/uw; scgi_temp_path {T}/sc; tcp_nopush on; keepalive_requests 100000;
  server {{ listen 127.0.0.1:{port} reuseport; location /static/ {{ alias {www}/static/; }}
           location /health {{ return 200 '{{}}'; }} }} }}""")
        ng = start([f"{D}/bin/nginx", "-p", T, "-e", f"{T}/ng.err", "-g", "daemon off; master_process on;", "-c", ngconf], port, "/health")
        if ng: measure("nginx", ng.pid, port, f"/static/{f}"); stop(ng)
        else: say(open(f"{T}/ng.err").read()[-600:] if os.path.exists(f"{T}/ng.err") else "no ng.err")
json.dump(dict(results=results, dur=DUR), open(f"{OUT}/bench12.json", "w"), indent=1)
say("\n== summary (median CPU us/req)")
import statistics
groups = {}
for r in results: groups.setdefault((r["contender"], r["path"]), []).append(r)
for (c, pth), rs in groups.items():
    say(f"{c:16} {pth:24} cpu/req median={statistics.median(x['cpu_us_per_req'] for x in rs):6.2f} us "
        f"(runs {[x['cpu_us_per_req'] for x in rs]}) rps median={statistics.median(x['rps'] for x in rs):.0f}")
