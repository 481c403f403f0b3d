#!/usr/bin/env python3
"""Scaling out, measured: throughput through HAProxy with 1, 2 and 3 preforkd hosts
(examples/cluster/cluster.sh), with HAProxy's own CPU per request; and the cost of /count
in Redis (shared.backend: redis) against /count in memory, on one host with no HAProxy.

usage: sudo python3 bench/cluster.py [--seconds 8] [--rounds 2] [--route /] [--out FILE]

Each figure is the median over rounds; the host counts alternate 1 2 3 3 2 1 ... and the
two /count backends A B A B, so that drift (thermal, other load) falls on both sides.
On a machine whose cores the hosts share (every host here has the same CPUs), more
hosts cannot add CPU: read the host-count rows as what HAProxy and the extra hops cost,
and the ratios, not as a scaling curve. Needs wrk, haproxy, redis-server and curl
(`bash .ci/deps bench` installs wrk)."""
import argparse, json, os, re, socket, statistics, subprocess, sys, tempfile, time

from proccpu import cpu_seconds, tree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "examples/cluster/cluster.sh")
PREFORKD = os.environ.get("PREFORKD", os.path.join(ROOT, "build/preforkd"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wrk(url, seconds, conns=64):
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"\n\s+99%\s+(\S+)", out).group(1)
    errors = re.search(r"Socket errors:.*|Non-2xx.*", out)
    return total, rps, p99, errors.group(0) if errors else ""


def through_haproxy(hosts, seconds, route):
    env = dict(os.environ, HOSTS=str(hosts), STATE=tempfile.mkdtemp(prefix="pfc-bench."),
               FRONT_PORT=str(free_port()), STATS_PORT=str(free_port()),
               REDIS_PORT=str(free_port()), PREFORKD=PREFORKD)
    subprocess.run(["bash", CLUSTER, "up"], env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        state = env["STATE"]
        hap = [int(open(f"{state}/haproxy.pid").read().split()[0])]
        servers = []
        for h in range(1, hosts + 1):
            servers += tree(int(open(f"{state}/host{h}.pid").read()))
        h0, s0 = cpu_seconds(hap), cpu_seconds(servers)
        total, rps, p99, errors = wrk(f"http://127.0.0.1:{env['FRONT_PORT']}{route}", seconds)
        h1, s1 = cpu_seconds(hap), cpu_seconds(servers)
        row = {"hosts": hosts, "rps": rps, "p99": p99, "errors": errors,
               "haproxy_us_per_req": (h1 - h0) / total * 1e6,
               "preforkd_us_per_req": (s1 - s0) / total * 1e6}
        if hosts == 1:
            # The same host without HAProxy in front: what the balancer's hop costs.
            addr = subprocess.run(["bash", CLUSTER, "addr", "1"], env=env, capture_output=True,
                                  text=True, check=True).stdout.strip()
            s0 = cpu_seconds(servers)
            total, rps, _, _ = wrk(f"http://{addr}:8080{route}", seconds)
            row["direct_rps"] = rps
            row["direct_preforkd_us_per_req"] = (cpu_seconds(servers) - s0) / total * 1e6
        return row
    finally:
        subprocess.run(["bash", CLUSTER, "down"], env=env, check=False)


def count_cost(backend, seconds, redis_port):
    port = free_port()
    d = tempfile.mkdtemp(prefix="pf-count.")
    conf = os.path.join(d, "c.yaml")
    with open(conf, "w") as f:
        f.write(f"listen: 127.0.0.1:{port}\nworkers: 2\nlog_level: warn\n"
                "routes:\n  - {path: /count, handler: count}\n  - {path: /health, handler: health}\n"
                f"shared: {{backend: {backend}, address: 127.0.0.1:{redis_port}}}\n")
    p = subprocess.Popen([PREFORKD, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.3)
        pids = tree(p.pid)
        rpid = int(subprocess.run(["redis-cli", "-p", str(redis_port), "info", "server"],
                                  capture_output=True, text=True).stdout.split("process_id:")[1].split()[0])
        c0, r0 = cpu_seconds(pids), cpu_seconds([rpid])
        total, rps, p99, errors = wrk(f"http://127.0.0.1:{port}/count", seconds, 32)
        c1, r1 = cpu_seconds(pids), cpu_seconds([rpid])
        return {"backend": backend, "rps": rps, "p99": p99, "errors": errors,
                "preforkd_us_per_req": (c1 - c0) / total * 1e6,
                "redis_us_per_req": (r1 - r0) / total * 1e6}
    finally:
        p.terminate()
        p.wait()


def median_rows(rows, key, fields):
    out = []
    for k in sorted({r[key] for r in rows}):
        rs = [r for r in rows if r[key] == k]
        out.append({key: k, **{f: statistics.median(r[f] for r in rs) for f in fields},
                    "runs": len(rs), "errors": "; ".join(sorted({r["errors"] for r in rs if r["errors"]}))})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--route", default="/")
    ap.add_argument("--out")
    a = ap.parse_args()
    rows = []
    order = [1, 2, 3]
    for r in range(a.rounds):
        for h in (order if r % 2 == 0 else order[::-1]):
            rows.append(through_haproxy(h, a.seconds, a.route))
            print(json.dumps(rows[-1]), file=sys.stderr)
    hosts = median_rows(rows, "hosts", ["rps", "haproxy_us_per_req", "preforkd_us_per_req"])
    direct = [r for r in rows if "direct_rps" in r]
    direct_rps = statistics.median(r["direct_rps"] for r in direct)
    direct_us = statistics.median(r["direct_preforkd_us_per_req"] for r in direct)

    rport = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    crow = []
    try:
        for r in range(a.rounds):
            for b in ("memory", "redis"):
                crow.append(count_cost(b, a.seconds, rport))
                print(json.dumps(crow[-1]), file=sys.stderr)
    finally:
        redis.terminate()
        redis.wait()
    counts = median_rows(crow, "backend", ["rps", "preforkd_us_per_req", "redis_us_per_req"])

    lines = [f"## Through HAProxy, GET {a.route} (wrk -t2 -c64 -d{a.seconds}s, medians of {a.rounds})", "",
             "| hosts | req/s | vs 1 host | HAProxy CPU µs/req | preforkd CPU µs/req (all hosts) | errors |",
             "|---|---|---|---|---|---|"]
    base = hosts[0]["rps"]
    for h in hosts:
        lines.append(f"| {h['hosts']} | {h['rps']:.0f} | {h['rps'] / base:.2f} | "
                     f"{h['haproxy_us_per_req']:.2f} | {h['preforkd_us_per_req']:.2f} | {h['errors'] or '0'} |")
    lines += ["", f"One host without HAProxy, same client: {direct_rps:.0f} req/s, preforkd "
              f"{direct_us:.2f} µs/req (medians of {len(direct)})."]
    lines += ["", f"## GET /count on one host, no HAProxy (wrk -t2 -c32 -d{a.seconds}s, medians of {a.rounds})", "",
              "| backend | req/s | preforkd CPU µs/req | redis-server CPU µs/req | errors |", "|---|---|---|---|---|"]
    for c in counts:
        lines.append(f"| {c['backend']} | {c['rps']:.0f} | {c['preforkd_us_per_req']:.2f} | "
                     f"{c['redis_us_per_req']:.2f} | {c['errors'] or '0'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
