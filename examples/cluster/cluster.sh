#!/usr/bin/env bash
# A preforkd cluster on one machine, from Debian's packages: three hosts running
# preforkd, HAProxy in front of them, Redis as their shared store.
#
#   sudo examples/cluster/cluster.sh            # start, print the addresses, wait for
#                                               # Ctrl-C, tear everything down
#   sudo examples/cluster/cluster.sh up         # start and return (then: down)
#   sudo examples/cluster/cluster.sh down       # tear down what `up` started
#   sudo examples/cluster/cluster.sh exec H CMD # run CMD on host H (1..HOSTS), in its
#                                               # network namespace
#   sudo examples/cluster/cluster.sh start-host H  # start host H's preforkd again (after a
#                                               # stop); its config is $STATE/hostH.yaml
#
# A host is a network namespace of this script's own (pfcN), joined to the others by a
# bridge (pfc-br) with addresses in $SUBNET.0/24 that exist only there: nothing is routed
# out, nothing is NATed. HAProxy and Redis run in the machine's own namespace, on the
# bridge's address (.1); clients reach HAProxy on 127.0.0.1:$FRONT_PORT. Where namespaces
# cannot be made (no root, no CAP_NET_ADMIN, MODE=loopback), each host is a loopback
# address instead: 127.0.0.2, 127.0.0.3, ...
#
# Settings (environment): PREFORKD (the binary; default build/preforkd, else the one in
# PATH), HOSTS (3), WORKERS (workers per host, 2), FRONT_PORT (8080), STATS_PORT (8404,
# HAProxy's statistics page: /stats, CSV at /stats;csv), HOST_PORT (8080), REDIS_PORT
# (6379; loopback mode: 6380), STATE (/tmp/preforkd-cluster: configs, logs, pids),
# SUBNET (10.210.0), MODE (auto, netns or loopback), LAME_DUCK (3s), INTER (500ms),
# FALL (2), RISE (2), BALANCE (roundrobin), RETRY_ON (conn-failure empty-response; none:
# HAProxy retries nothing).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
HOSTS=${HOSTS:-3}
WORKERS=${WORKERS:-2}
FRONT_PORT=${FRONT_PORT:-8080}
STATS_PORT=${STATS_PORT:-8404}
HOST_PORT=${HOST_PORT:-8080}
STATE=${STATE:-/tmp/preforkd-cluster}
SUBNET=${SUBNET:-10.210.0}
MODE=${MODE:-auto}
LAME_DUCK=${LAME_DUCK:-3s}
INTER=${INTER:-500ms}
FALL=${FALL:-2}
RISE=${RISE:-2}
BALANCE=${BALANCE:-roundrobin}
RETRY_ON=${RETRY_ON:-conn-failure empty-response}
BR=pfc-br

if [ -z "${PREFORKD:-}" ]; then
  if [ -x "$root/build/preforkd" ]; then PREFORKD=$root/build/preforkd
  else PREFORKD=$(command -v preforkd || true); fi
fi

die() { echo "cluster: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 not found: install the Debian package $2"; }

# The mode `up` chose, remembered for `down` and `exec`.
mode_file() { echo "$STATE/mode"; }
host_addr() { # host number -> its address
  if [ "$(cat "$(mode_file)")" = netns ]; then echo "$SUBNET.$((10 + $1))"; else echo "127.0.0.$(($1 + 1))"; fi
}
front_addr() { if [ "$(cat "$(mode_file)")" = netns ]; then echo "$SUBNET.1"; else echo 127.0.0.1; fi; }
redis_port() { if [ "$(cat "$(mode_file)")" = netns ]; then echo "${REDIS_PORT:-6379}"; else echo "${REDIS_PORT:-6380}"; fi; }
in_host() { # host number, command...
  local h=$1; shift
  if [ "$(cat "$(mode_file)")" = netns ]; then ip netns exec "pfc$h" "$@"; else "$@"; fi
}

can_netns() {
  [ "$(id -u)" -eq 0 ] || return 1
  ip netns add pfc-probe 2>/dev/null || return 1
  ip netns del pfc-probe
}

# What a run that was killed before its teardown left: the processes in its namespaces,
# the namespaces, the bridge. (Its HAProxy and Redis are found by their pid files in
# $STATE, when it is the same.)
net_clean() {
  for h in $(seq 1 "$HOSTS"); do
    if ip netns list | grep -qw "pfc$h"; then
      ip netns pids "pfc$h" | xargs -r kill -9 2>/dev/null || true
      ip netns del "pfc$h" 2>/dev/null || true
    fi
    ip link del "pfc$h-br" 2>/dev/null || true
  done
  ip link del "$BR" 2>/dev/null || true
}

net_up() {
  net_clean
  ip link add "$BR" type bridge
  ip addr add "$SUBNET.1/24" dev "$BR"
  ip link set "$BR" up
  for h in $(seq 1 "$HOSTS"); do
    ip netns add "pfc$h"
    ip link add "pfc$h-br" type veth peer name eth0 netns "pfc$h"
    ip link set "pfc$h-br" master "$BR" up
    ip -n "pfc$h" addr add "$SUBNET.$((10 + h))/24" dev eth0
    ip -n "pfc$h" link set eth0 up
    ip -n "pfc$h" link set lo up
  done
}

net_down() {
  for h in $(seq 1 "$HOSTS"); do
    ip netns del "pfc$h" 2>/dev/null || true   # takes its end of the veth pair with it
    ip link del "pfc$h-br" 2>/dev/null || true
  done
  ip link del "$BR" 2>/dev/null || true
}

wait_for() { # seconds, command...: until the command succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}

host_config() { # host number
  cat <<YAML
# Host $1 of the cluster (examples/cluster/cluster.sh).
listen: $(host_addr "$1"):$HOST_PORT
workers: $WORKERS
pid_file: $STATE/host$1.pid
log_file: $STATE/host$1.log
timeouts:
  # Longer than HAProxy's detection, (fall + 1) x inter: HAProxy takes this host out of
  # rotation before its listeners close.
  lame_duck: $LAME_DUCK
  shutdown: 30s
routes:
  - {path: /, handler: sum}
  - {path: /health, handler: health}
  - {path: /ready, handler: ready}
  - {path: /count, handler: count}
shared: {backend: redis, address: $(front_addr):$(redis_port), timeout: 1s}
YAML
}

haproxy_config() {
  cat <<CFG
# examples/cluster/cluster.sh: HAProxy in front of $HOSTS preforkd hosts.
global
  maxconn 4096
  pidfile $STATE/haproxy.pid
  stats socket $STATE/haproxy.sock mode 600 level admin

defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 10s
  # A request that found a connection closed under it (a worker draining after a reload,
  # a host that died) is sent again to another server; conn-failure alone would not
  # cover a keep-alive connection closed between requests.
  retries 3
  retry-on $RETRY_ON
  option redispatch 1

frontend www
  bind 127.0.0.1:$FRONT_PORT
  default_backend preforkd

backend preforkd
  balance $BALANCE
  # /ready, not /health: it turns 503 at the start of a graceful stop (lame duck), while
  # the host still serves, so HAProxy stops sending before the listeners close.
  option httpchk GET /ready HTTP/1.1
  http-check send hdr Host cluster
  http-check expect status 200
  default-server inter $INTER fall $FALL rise $RISE
$(for h in $(seq 1 "$HOSTS"); do echo "  server host$h $(host_addr "$h"):$HOST_PORT check"; done)

listen stats
  bind 127.0.0.1:$STATS_PORT
  stats enable
  stats uri /stats
  stats refresh 1s
CFG
}

host_ready_in() { in_host "$1" curl -sf "http://$(host_addr "$1"):$HOST_PORT/ready"; }

start_host() { # host number
  host_config "$1" >"$STATE/host$1.yaml"
  in_host "$1" setsid "$PREFORKD" -c "$STATE/host$1.yaml" </dev/null >>"$STATE/host$1.out" 2>&1 &
  wait_for 30 host_ready_in "$1" || die "host $1 did not become ready: $(tail -5 "$STATE/host$1.log" 2>/dev/null)"
}

all_up_in_haproxy() { # every server UP in HAProxy's statistics
  local csv; csv=$(curl -sf "http://127.0.0.1:$STATS_PORT/stats;csv") || return 1
  [ "$(echo "$csv" | awk -F, '$1 == "preforkd" && $2 ~ /^host/ && $18 == "UP"' | wc -l)" -eq "$HOSTS" ]
}

up() {
  need haproxy haproxy; need redis-server redis-server; need curl curl; need ip iproute2
  [ -n "$PREFORKD" ] && [ -x "$PREFORKD" ] || die "no preforkd binary: build it (cmake) or set PREFORKD"
  down_quiet
  mkdir -p "$STATE"
  local mode=$MODE
  if [ "$mode" = auto ]; then if can_netns; then mode=netns; else mode=loopback; fi; fi
  echo "$mode" >"$(mode_file)"
  [ "$mode" = netns ] && net_up
  redis-server --bind "$(front_addr)" --port "$(redis_port)" --save '' --appendonly no \
    --protected-mode no --daemonize no --logfile "$STATE/redis.log" </dev/null >/dev/null 2>&1 &
  echo $! >"$STATE/redis.pid"
  wait_for 30 redis-cli -h "$(front_addr)" -p "$(redis_port)" ping || die "redis did not start"
  for h in $(seq 1 "$HOSTS"); do start_host "$h"; done
  haproxy_config >"$STATE/haproxy.cfg"
  haproxy -c -q -f "$STATE/haproxy.cfg" || die "haproxy refused $STATE/haproxy.cfg"
  haproxy -f "$STATE/haproxy.cfg" -D
  wait_for 30 all_up_in_haproxy || die "HAProxy does not see every host UP"
  echo "cluster up ($mode): http://127.0.0.1:$FRONT_PORT/ -> $(for h in $(seq 1 "$HOSTS"); do printf '%s ' "$(host_addr "$h"):$HOST_PORT"; done)"
  echo "  HAProxy statistics: http://127.0.0.1:$STATS_PORT/stats   Redis: $(front_addr):$(redis_port)"
  echo "  state, configs and logs: $STATE"
}

stop_pidfile() { # file
  local pid
  [ -f "$1" ] && pid=$(cat "$1") && [ -n "$pid" ] && kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

down_quiet() {
  [ -f "$(mode_file)" ] || return 0
  stop_pidfile "$STATE/haproxy.pid"
  for h in $(seq 1 "$HOSTS"); do stop_pidfile "$STATE/host$h.pid"; done
  stop_pidfile "$STATE/redis.pid"
  [ "$(cat "$(mode_file)")" = netns ] && net_down
  rm -f "$(mode_file)"
}

case "${1:-run}" in
  up) up ;;
  down) down_quiet ;;
  exec) shift; h=$1; shift; in_host "$h" "$@" ;;
  addr) host_addr "$2" ;;
  start-host) start_host "$2" ;;
  run)
    trap 'down_quiet; exit 0' INT TERM
    trap down_quiet EXIT
    up
    echo "Ctrl-C stops it all."
    while sleep 3600; do :; done ;;
  *) die "usage: $0 [run|up|down|exec HOST CMD...|addr HOST|start-host HOST]" ;;
esac
