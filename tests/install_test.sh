#!/usr/bin/env bash
# The installed layout runs as the systemd unit says: `cmake --install` of the build into
# a staging DESTDIR, then every path the installed units name must be there.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR [CMAKE]
set -euo pipefail
build=$1 src=$2 cmake=${3:-cmake}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest=$work/root units=$work/units
mkdir "$dest" "$units"
fail() {
  echo "FAIL: $*" >&2
  echo "installed files:" >&2
  (cd "$dest" && find . -type f -o -type l | sort) >&2
  exit 1
}

if ! out=$(DESTDIR=$dest "$cmake" --install "$build" 2>&1); then
  echo "$out"; fail "cmake --install failed"
fi

# The units: one of each, in a directory systemd reads units from.
service=$(find "$dest" -name preforkd.service)
[ "$(echo "$service" | grep -c .)" = 1 ] || fail "expected one preforkd.service, found: $service"
unitdir=$(dirname "${service#"$dest"}")
[ -f "$dest$unitdir/preforkd.socket" ] || fail "no preforkd.socket next to $unitdir/preforkd.service"
systemd-analyze --system unit-paths | grep -qx "$unitdir" ||
  fail "$unitdir is not in systemd's unit search path (systemd-analyze unit-paths)"

# Every command the service runs is the installed binary, with the installed config.
bin="" conf=""
for key in ExecStartPre ExecStart ExecReload; do
  line=$(grep "^$key=" "$dest$unitdir/preforkd.service") || fail "no $key= in preforkd.service"
  read -r -a argv <<< "${line#*=}"
  cmd=$(sed -E 's/^[-@:+!]+//' <<< "${argv[0]}")
  case $cmd in /*) ;; *) fail "$key runs '$cmd', not an absolute path" ;; esac
  [ -f "$dest$cmd" ] && [ -x "$dest$cmd" ] || fail "$key runs $cmd, which is not installed"
  [ -z "$bin" ] || [ "$cmd" = "$bin" ] || fail "$key runs $cmd, ExecStartPre runs $bin"
  bin=$cmd
  c=""
  for ((i = 1; i + 1 < ${#argv[@]}; i++)); do
    if [ "${argv[i]}" = "-c" ]; then c=${argv[i + 1]}; fi
  done
  [ -n "$c" ] || fail "$key passes no -c FILE: $line"
  [ -f "$dest$c" ] || fail "$key reads $c, which is not installed"
  [ -z "$conf" ] || [ "$c" = "$conf" ] || fail "$key reads $c, ExecStartPre reads $conf"
  conf=$c
  echo "ok: $key=${line#*=}"
done
cmp -s "$dest$conf" "$src/conf/preforkd.yaml" || fail "$conf is not conf/preforkd.yaml"
case $conf in /usr/etc/*) fail "the configuration went to $conf: /usr/etc is no sysconfdir" ;; esac
if [ "$bin" = /usr/sbin/preforkd ]; then
  # The Debian package's layout (prefix /usr).
  [ "$conf" = /etc/preforkd/preforkd.yaml ] || fail "prefix /usr: config at $conf"
  [ "$unitdir" = /lib/systemd/system ] || fail "prefix /usr: units in $unitdir"
fi

# Started without -c, the binary reads the same file the unit names.
default=$("$dest$bin" --help | sed -n 's/.*--config FILE.*(default \(.*\))$/\1/p')
[ "$default" = "$conf" ] || fail "$bin's default configuration is '$default', the unit's is $conf"
"$dest$bin" -t -c "$dest$conf" >/dev/null || fail "$bin -t rejects the installed $conf"

# The directories the documented pid_file and log_file paths need under ProtectSystem=strict.
grep -qx "RuntimeDirectory=preforkd" "$dest$unitdir/preforkd.service" || fail "no RuntimeDirectory"
grep -qx "LogsDirectory=preforkd" "$dest$unitdir/preforkd.service" || fail "no LogsDirectory"

# What is installed is the shipped daemon: no fault injection, no test binary.
if grep -q PREFORKD_FAULT "$dest$bin"; then fail "$bin has the PREFORKD_FAULT hooks"; fi
if find "$dest" -name 'preforkd-test*' | grep -q .; then fail "preforkd-test was installed"; fi

# systemd's own reading of the installed units, with the commands looked up in DESTDIR.
sed -E "s#^(Exec[A-Za-z]+=[-@:+!]*)/#\1$dest/#" "$dest$unitdir/preforkd.service" \
  > "$units/preforkd.service"
cp "$dest$unitdir/preforkd.socket" "$units/"
out=$(systemd-analyze verify "$units/preforkd.service" "$units/preforkd.socket" 2>&1) ||
  { echo "$out"; fail "systemd-analyze verify"; }
if echo "$out" | grep -E "preforkd\.(service|socket)"; then fail "systemd-analyze verify"; fi

echo "ok: installed $(cd "$dest" && find . -type f | sed 's#^\.##' | sort | tr '\n' ' ')"
