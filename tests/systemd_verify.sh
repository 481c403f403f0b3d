#!/usr/bin/env bash
# systemd-analyze verify on the units generated into the build tree, with their
# preforkd command pointed at the built binary (verify insists that the command exists).
# Usage: systemd_verify.sh UNIT_DIR INSTALLED_BINARY BUILT_BINARY
set -euo pipefail
units=$1 installed=$2 bin=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for u in preforkd.service preforkd.socket; do
  sed "s#$installed#$bin#g" "$units/$u" > "$tmp/$u"
done
grep -q "^ExecStart=$bin " "$tmp/preforkd.service" || {
  echo "ExecStart does not run $installed:"; grep '^Exec' "$units/preforkd.service"; exit 1; }
out=$(systemd-analyze verify "$tmp/preforkd.service" "$tmp/preforkd.socket" 2>&1) || {
  echo "$out"; exit 1; }
# verify exits 0 on some warnings; any line naming our units is a finding.
if echo "$out" | grep -E "preforkd\.(service|socket)" ; then exit 1; fi
echo "systemd-analyze verify: preforkd.service and preforkd.socket are clean"
