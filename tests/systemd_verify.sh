#!/usr/bin/env bash
# systemd-analyze verify on the shipped units, with ExecStart pointed at the built
# binary (verify insists that the command exists).
set -euo pipefail
src=$1 bin=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for u in preforkd.service preforkd.socket; do
  sed "s#/usr/sbin/preforkd#$bin#g" "$src/systemd/$u" > "$tmp/$u"
done
out=$(systemd-analyze verify "$tmp/preforkd.service" "$tmp/preforkd.socket" 2>&1) || {
  echo "$out"; exit 1; }
# verify exits 0 on some warnings; any line naming our units is a finding.
if echo "$out" | grep -E "preforkd\.(service|socket)" ; then exit 1; fi
echo "systemd-analyze verify: preforkd.service and preforkd.socket are clean"
