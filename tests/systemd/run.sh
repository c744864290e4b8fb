#!/usr/bin/env bash
# The shipped units under a real systemd: boots a minimal Debian in systemd-nspawn,
# installs the release servy with server/systemd/install.sh, and checks what the units
# promise: socket activation, readiness and STATUS=, journald fields, redirects and
# reload, the sandbox, a graceful stop, zero-downtime restarts under k6, MemoryMax, a
# stalled journal under load, 10,000 idle connections under MemoryMax, the watchdog,
# the private-network drop-in, a masked metrics socket, HTTPS (a certificate by
# LoadCredential=, reloads, restarts under k6 over TLS), HTTP/3 on a passed UDP socket
# (curl_cffi), and an ACME certificate from
# pebble kept in the state directory across a restart. Prints PASS/FAIL per
# check with what was measured, then "N passed, M failed"; exits non-zero on a failure.
#
#   sudo tests/systemd/run.sh
#
# Needs root, debootstrap, systemd-nspawn, curl, jq, k6, python3 (with curl_cffi), openssl. The Debian root is built
# once and cached outside the repository (see root.sh); each run boots a fresh copy.
# The container shares the host's network: servy listens on free loopback ports
# (SERVY_TEST_PORT, default a free one in 20000-29999; metrics +1, https +2, redirects stub +10)
# and k6 runs on the host. Every wait has a timeout; the container is always torn down.
set -Eeuo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
started=$SECONDS

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (debootstrap, systemd-nspawn)" >&2; exit 2; }
for tool in debootstrap systemd-nspawn systemctl nsenter pgrep curl jq k6 python3 openssl; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (tests/install-deps.sh)" >&2; exit 2; }
done

# in_use PORT: something on this machine listens on 127.0.0.1:PORT or *:PORT (IPv4).
in_use() { awk -v p=":$(printf '%04X' "$1")" '$2 ~ p"$" && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp; }
port=${SERVY_TEST_PORT:-}
while [ -z "$port" ]; do
  port=$((20000 + RANDOM % 10000))
  ! in_use $port && ! in_use $((port + 1)) && ! in_use $((port + 2)) && ! in_use $((port + 10)) || port=
done
metrics_port=$((port + 1))
https_port=$((port + 2))
https_base=https://localhost:$https_port
stub_port=$((port + 10))
base=http://127.0.0.1:$port
watchdog_test=4 # seconds; WatchdogSec for the watchdog check only

passed=0
failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
# verdict CONDITION-EXIT-STATUS MESSAGE: PASS or FAIL with the same message.
verdict() { if [ "$1" = 0 ]; then pass "$2"; else fail "$2"; fi; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# wait_for SECONDS COMMAND...: polls every 0.1 s; status 1 on timeout.
wait_for() {
  local limit=$1
  shift
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.1
  done
}

# --- build and stage --------------------------------------------------------------------
bindir=${SERVY_TEST_BINDIR:-}
if [ -z "$bindir" ]; then
  (cd "$repo/server" && cargo build --release --locked -q -p servy -p servy-stub)
  bindir=$repo/server/target/release
fi
root=$(bash "$here/root.sh")

work=$(mktemp -d /var/tmp/servy-systemd.XXXXXX)
nspawn_pid=
stub_pid=
cleanup() {
  local status=$?
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    if [ "$status" != 0 ] || [ "$failed" != 0 ]; then
      echo "--- the container's journal for servy (last 40 lines)"
      ct journalctl -u 'servy*' -n 40 --no-pager 2>/dev/null || true
    fi
    # nspawn turns SIGTERM into an orderly shutdown of the container.
    kill -TERM "$nspawn_pid" 2>/dev/null || true
    wait_for 20 sh -c "! kill -0 $nspawn_pid" || kill -KILL "$nspawn_pid" 2>/dev/null || true
  fi
  [ -z "$stub_pid" ] || kill "$stub_pid" 2>/dev/null || true
  jobs -p | xargs -r kill 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT
trap 'echo "run.sh: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR
trap 'exit 130' INT TERM

cp -a "$root" "$work/root"
ct_root=$work/root
DESTDIR=$ct_root sh "$repo/server/systemd/install.sh" "$bindir/servy" >/dev/null

# The shipped units stay as they are; the test's ports are drop-ins, as a user's would be.
for s in "servy:$port" "servy-metrics:$metrics_port" "servy-https:$https_port"; do
  mkdir -p "$ct_root/etc/systemd/system/${s%%:*}.socket.d"
  printf '[Socket]\nListenStream=\nListenStream=127.0.0.1:%s\n' "${s##*:}" \
    >"$ct_root/etc/systemd/system/${s%%:*}.socket.d/test-port.conf"
done
# A small, fixed send buffer: loopback's autotuned one swallows a whole asset at once,
# and a graceful stop would then have nothing left in flight to prove.
printf 'SendBuffer=16K\n' >>"$ct_root/etc/systemd/system/servy.socket.d/test-port.conf"
# HTTP/3 on the https port's number, over UDP.
mkdir -p "$ct_root/etc/systemd/system/servy-quic.socket.d"
printf '[Socket]\nListenDatagram=\nListenDatagram=127.0.0.1:%s\n' "$https_port" \
  >"$ct_root/etc/systemd/system/servy-quic.socket.d/test-port.conf"
systemctl --root="$ct_root" enable servy.socket servy-metrics.socket servy-https.socket servy-quic.socket >/dev/null 2>&1
# HTTPS: two certificates. "localhost" is root's alone (0600) and reaches servy's dynamic
# user only through LoadCredential=; "direct.test" is a file servy reads itself, so a
# reload can be seen re-reading it (systemd copies credentials at start only).
bash "$repo/tests/tls/mkcert.sh" "$work/tls-cred" localhost 127.0.0.1
bash "$repo/tests/tls/mkcert.sh" "$work/tls-direct" direct.test
install -d -m 0700 "$ct_root/etc/servy/tls"
install -m 0600 "$work/tls-cred/fullchain.pem" "$work/tls-cred/key.pem" "$ct_root/etc/servy/tls/"
install -d -m 0755 "$ct_root/etc/servy/direct"
install -m 0644 "$work/tls-direct/fullchain.pem" "$work/tls-direct/key.pem" "$ct_root/etc/servy/direct/"
mkdir -p "$ct_root/etc/systemd/system/servy.service.d"
printf '[Service]\nLoadCredential=fullchain.pem:/etc/servy/tls/fullchain.pem\nLoadCredential=key.pem:/etc/servy/tls/key.pem\n' \
  >"$ct_root/etc/systemd/system/servy.service.d/test-tls.conf"
cat >"$ct_root/etc/servy/servy.toml" <<EOF
# No metrics listener of servy's own: only the one systemd passes (or none).
[metrics]
listen = []

[redirects]
source = "http://127.0.0.1:$stub_port/redirects.txt"
refresh_interval = "1m"
min_refresh_interval = "1s"

[log]
level = "info"
format = "auto"

[https]
http3 = true

# A name relative to the credentials directory (LoadCredential=), then absolute paths.
[[https.certificates]]
cert = "fullchain.pem"
key = "key.pem"
[[https.certificates]]
cert = "/etc/servy/direct/fullchain.pem"
key = "/etc/servy/direct/key.pem"
EOF

alias_name=systemd-test
alias_target=https://example.org/from-the-stub
printf '# aliases for the container test\n%s %s\n' "$alias_name" "$alias_target" >"$work/redirects.txt"
"$bindir/servy-stub" --listen "127.0.0.1:$stub_port" --file "$work/redirects.txt" >"$work/stub.log" 2>&1 &
stub_pid=$!

# --- boot ---------------------------------------------------------------------------------
boot_start=$(now)
systemd-nspawn --boot --register=no --keep-unit --quiet --machine="servy-test-$port" \
  --directory="$ct_root" </dev/null >"$work/console.log" 2>&1 &
nspawn_pid=$!
pid1=
# The container's PID 1 is systemd-nspawn's child that runs systemd: matching the name
# skips nspawn's short-lived intermediate child, whose namespaces are not the container's.
find_pid1() { pid1=$(pgrep -P "$nspawn_pid" -x systemd | head -n1) && [ -n "$pid1" ]; }
wait_for 10 find_pid1 || { cat "$work/console.log"; echo "run.sh: the container did not start" >&2; exit 1; }

# ct COMMAND...: run a command inside the container, as root, with a clean environment.
ct() { nsenter --target "$pid1" --all env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
booted() { case $(ct systemctl is-system-running 2>/dev/null) in running | degraded) return 0 ;; *) return 1 ;; esac; }
wait_for 60 booted || { tail -n 30 "$work/console.log"; echo "run.sh: the container did not boot" >&2; exit 1; }
echo "container booted in $(elapsed "$boot_start" "$(now)") s"

# Without a host systemd to delegate to, nspawn mounts cgroup v1 controllers read-only,
# so the container's systemd could not enforce MemoryMax. Make the memory hierarchy
# writable (it is the container's own subtree) and let systemd look again.
if ct sh -c 'grep -q " /sys/fs/cgroup/memory .*ro," /proc/self/mounts'; then
  ct mount -o remount,bind,rw /sys/fs/cgroup/memory
  ct systemctl daemon-reexec
  wait_for 20 booted
fi

# From here on a failing command is a failed check, not the end of the run: every check
# reports PASS or FAIL itself, and the summary decides the exit status.
set +e
trap - ERR

prop() { ct systemctl show -p "$2" --value "$1"; }
# servy.service's overall exposure score inside the container, e.g. "1.1".
exposure() {
  ct systemd-analyze security servy.service --no-pager |
    sed -n 's/.*Overall exposure level for servy.service: \([0-9.]*\).*/\1/p'
}
http_code() { curl -sS -m 10 -o /dev/null -w '%{http_code}' "$@" || true; }

# --- 1. socket activation -------------------------------------------------------------------
sockets=$(ct systemctl is-active servy.socket servy-metrics.socket | tr '\n' ' ' || true)
state=$(prop servy.service ActiveState)
in_use "$port" && in_use "$metrics_port" && [ "$sockets" = "active active " ] && [ "$state" = inactive ]
verdict $? "activation: after boot both sockets listen ($sockets) and servy.service is $state"
first=$(curl -sS -m 10 -o /dev/null -w '%{http_code} %{time_total}' "$base/") || first="refused"
state=$(prop servy.service ActiveState)
[ "${first% *}" = 200 ] && [ "$state" = active ]
verdict $? "activation: first request answered ${first% *} in ${first#* } s (start included); servy.service is $state"
metrics=$(http_code "http://127.0.0.1:$metrics_port/metrics")
readyz=$(http_code "http://127.0.0.1:$metrics_port/readyz")
# The sandbox must leave the process metrics working (the start time comes from /proc/stat).
started_at=$(curl -sS -m 5 "http://127.0.0.1:$metrics_port/metrics" | awk '$1 == "process_start_time_seconds" { print $2 }')
[ "$metrics" = 200 ] && [ "$readyz" = 200 ] && le 1 "${started_at:-0}"
verdict $? "activation: the metrics socket reaches the same servy: /metrics $metrics, /readyz $readyz, process_start_time_seconds ${started_at:-missing}"

# --- 2. readiness and status ----------------------------------------------------------------
type=$(prop servy.service Type)
status_text=$(prop servy.service StatusText)
[ "$type" = notify ] && [ -n "$status_text" ] &&
  ct systemctl status servy.service --no-pager 2>/dev/null | grep -q "Status: \"$status_text\""
verdict $? "status: Type=$type; systemctl status shows STATUS=\"$status_text\""
# servy sends READY=1 only after its first redirects load; with the stub answering after
# 2 s, systemd must hold the unit in "activating" for those 2 s, then call it active.
stub_mode() { curl -sS -m 5 -o /dev/null -X POST "http://127.0.0.1:$stub_port/control/mode/$1"; }
stub_mode 'delay?ms=2000'
ct systemctl restart --no-block servy.service
activating() { [ "$(prop servy.service ActiveState)" = activating ]; }
is_active() { [ "$(prop servy.service ActiveState)" = active ]; }
wait_for 5 activating && seen=activating || seen="never activating"
readyz=$(curl -sS -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$metrics_port/readyz" 2>/dev/null || true)
wait_for 15 is_active || true
exec_start=$(prop servy.service ExecMainStartTimestampMonotonic)
active_enter=$(prop servy.service ActiveEnterTimestampMonotonic)
ready_ms=$(((active_enter - exec_start) / 1000))
stub_mode ok
[ "$seen" = activating ] && is_active && [ "$ready_ms" -ge 2000 ]
verdict $? "readiness: $seen (/readyz ${readyz:-none}) until READY=1, active ${ready_ms} ms after exec behind a 2 s redirects source"

# --- 3. journald ----------------------------------------------------------------------------
cursor=$(ct journalctl -u servy.service -n 0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p')
declare -A sent
for p in / /style.css /robots.txt /no-such-page-$RANDOM; do
  sent[$p]=$(curl -sS -m 10 -o /dev/null -w '%{http_code} %{size_download}' "$base$p" || true)
done
# Request entries: one JSON object per line with servy's path field (F_PATH under
# tracing-journald's default prefix, or PATH).
request_entries() {
  ct journalctl -u servy.service -o json --no-pager --after-cursor="$cursor" |
    jq -c 'with_entries(.key |= sub("^F_"; "")) | select(.PATH != null)'
}
enough_entries() { [ "$(request_entries | wc -l)" -ge ${#sent[@]} ]; }
wait_for 10 enough_entries || true
entries=$(request_entries)
ok=0
for p in "${!sent[@]}"; do
  read -r code size <<<"${sent[$p]}"
  mine=$(jq -c --arg p "$p" 'select(.PATH == $p)' <<<"$entries")
  n=$(grep -c . <<<"$mine" || true)
  fields=$(jq -r '[.METHOD, .STATUS, .BYTES, .DURATION_US // .DURATION // empty] | map(tostring) | join(" ")' <<<"$mine" | head -n1)
  logged_status=$(jq -r '.STATUS' <<<"$mine" | head -n1)
  if [ "$n" = 1 ] && [ "$logged_status" = "$code" ] && [ "$(wc -w <<<"$fields")" = 4 ]; then
    echo "    $p: one entry, method status bytes duration = $fields (client saw $code, $size bytes)"
  else
    echo "    $p: $n entries, fields '$fields' (client saw $code)"
    ok=1
  fi
done
names=$(ct journalctl -u servy.service -o json --no-pager --after-cursor="$cursor" |
  jq -rs 'map(select(.F_PATH? // .PATH?)) | first | keys | map(select(test("^_") | not)) | join(" ")')
verdict $ok "journald: one entry per request with method, path, status, bytes and duration (${#sent[@]} requests; fields: $names)"

# --- 9. redirects (early: later checks restart servy) ---------------------------------------
redirect() { curl -sS -m 10 -o /dev/null -w '%{http_code} %{redirect_url}' "$base/$alias_name" || true; }
got=$(redirect)
[ "$got" = "308 $alias_target" ]
verdict $? "redirects: /$alias_name → $got (stub on the host's loopback)"
# systemctl reload runs the unit's ExecReload, SIGHUP: servy refetches at once.
stub_count() { curl -sS -m 5 "http://127.0.0.1:$stub_port/control/count" || echo 0; }
count_before=$(stub_count)
ct systemctl reload servy.service
refetched() { [ "$(stub_count)" -gt "$count_before" ]; }
wait_for 5 refetched
verdict $? "reload: systemctl reload → SIGHUP → refetch (stub requests $count_before → $(stub_count))"
kill "$stub_pid"
wait "$stub_pid" 2>/dev/null
stub_pid=
pid_before=$(prop servy.service MainPID)
# Refreshes that failed so far, by servy's own count (every result but ok/not_modified).
failed_refreshes() {
  curl -sS -m 5 "http://127.0.0.1:$metrics_port/metrics" |
    awk '/^servy_redirects_refreshes_total\{/ && !/result="(ok|not_modified)"/ { n += $2 } END { print n + 0 }'
}
failed_before=$(failed_refreshes)
# A refetch that now fails (after min_refresh_interval, 1 s, from the last one).
sleep 1.1
ct systemctl reload servy.service
refetch_failed() { [ "$(failed_refreshes)" -gt "$failed_before" ]; }
wait_for 5 refetch_failed && tried="failed as it should" || tried="never tried"
got=$(redirect)
[ "$tried" = "failed as it should" ] && [ "$got" = "308 $alias_target" ] &&
  [ "$(prop servy.service MainPID)" = "$pid_before" ]
verdict $? "redirects: stub stopped, reloaded (the refetch $tried): /$alias_name still → $got (last good map)"
"$bindir/servy-stub" --listen "127.0.0.1:$stub_port" --file "$work/redirects.txt" >>"$work/stub.log" 2>&1 &
stub_pid=$!

# --- 10. https ---------------------------------------------------------------------------------
# served NAME: the SHA-256 fingerprint of the certificate servy presents for SNI NAME.
served() {
  openssl s_client -connect "127.0.0.1:$https_port" -servername "$1" </dev/null 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256 2>/dev/null
}
fingerprint() { openssl x509 -in "$1" -noout -fingerprint -sha256; }
https_code=$(curl -sS -m 10 -o /dev/null -w '%{http_code} %{http_version}' --cacert "$work/tls-cred/ca.pem" "$https_base/" || true)
cred_mode=$(ct stat -c '%a %U' /etc/servy/tls/key.pem)
[ "$https_code" = "200 2" ] && [ "$(served localhost)" = "$(fingerprint "$work/tls-cred/fullchain.pem")" ] &&
  [ "$(served direct.test)" = "$(fingerprint "$work/tls-direct/fullchain.pem")" ] && [ "$cred_mode" = "600 root" ]
verdict $? "https: $https_base/ → ${https_code/ 2/ over HTTP/2}, verified; its key (mode $cred_mode) reached servy by LoadCredential=; SNI picks each certificate"
# HTTP/3 on the passed quic socket, with curl_cffi's libcurl (HTTP/3 only), and its
# advertisement over HTTP/2.
h3_answer=$(python3 -c '
import sys
from curl_cffi import CurlHttpVersion, requests
r = requests.get(sys.argv[1], http_version=CurlHttpVersion.V3ONLY, verify=sys.argv[2], timeout=10)
print(r.status_code, r.http_version, len(r.content))' "$https_base/" "$work/tls-cred/ca.pem" 2>&1 | tail -n1)
h2_size=$(curl -sS -m 10 -o /dev/null -w '%{size_download}' --cacert "$work/tls-cred/ca.pem" "$https_base/" || true)
alt_svc=$(curl -sS -m 10 -D - -o /dev/null --cacert "$work/tls-cred/ca.pem" "$https_base/" |
  tr -d '\r' | sed -n 's/^alt-svc: //Ip')
[ "$h3_answer" = "200 30 $h2_size" ] && [ "$alt_svc" = "h3=\":$https_port\"; ma=86400" ]
verdict $? "http3: servy-quic.socket passed as \"quic\": $https_base/ over HTTP/3 → $h3_answer (status, version, bytes; $h2_size over HTTP/2); Alt-Svc over HTTP/2: $alt_svc"
# New files for both, then systemctl reload (SIGHUP): the file servy reads is served anew
# at once, by the same process; the credential stays systemd's copy from the start.
bash "$repo/tests/tls/mkcert.sh" "$work/tls-cred2" localhost 127.0.0.1
bash "$repo/tests/tls/mkcert.sh" "$work/tls-direct2" direct.test
install -m 0600 "$work/tls-cred2/fullchain.pem" "$work/tls-cred2/key.pem" "$ct_root/etc/servy/tls/"
install -m 0644 "$work/tls-direct2/fullchain.pem" "$work/tls-direct2/key.pem" "$ct_root/etc/servy/direct/"
pid_before=$(prop servy.service MainPID)
tls_reloads() { curl -sS -m 5 "http://127.0.0.1:$metrics_port/metrics" | awk '$1 == "servy_tls_reloads_total{result=\"ok\"}" { print $2 }'; }
reloads_before=$(tls_reloads)
ct systemctl reload servy.service
tls_reloaded() { [ "$(tls_reloads)" -gt "${reloads_before:-0}" ]; }
wait_for 10 tls_reloaded
new_direct=$(served direct.test)
cred_after_reload=$(served localhost)
[ "$new_direct" = "$(fingerprint "$work/tls-direct2/fullchain.pem")" ] && [ "$(prop servy.service MainPID)" = "$pid_before" ]
verdict $? "https: files changed, systemctl reload → the new direct.test certificate is served by the same process (reloads ok: ${reloads_before:-0} → $(tls_reloads))"
if [ "$cred_after_reload" = "$(fingerprint "$work/tls-cred/fullchain.pem")" ]; then
  echo "    (the credential still held the old copy after the reload: systemd $(ct systemctl --version | awk 'NR == 1 { print $2 }') copies credentials at start)"
fi
ct systemctl restart servy.service
[ "$(served localhost)" = "$(fingerprint "$work/tls-cred2/fullchain.pem")" ] &&
  curl -sS -m 10 -o /dev/null --cacert "$work/tls-cred2/ca.pem" "$https_base/"
verdict $? "https: after systemctl restart the new credential is served (what the NixOS module does on renewal)"

# --- 4. sandbox -----------------------------------------------------------------------------
main_pid=$(prop servy.service MainPID)
status=$(ct cat "/proc/$main_pid/status")
field() { awk -v k="$1:" '$1 == k { print $2 }' <<<"$status"; }
uid=$(field Uid)
# DynamicUser= allocates from 61184–65519.
[ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ] && [ "$(field CapEff)" = 0000000000000000 ] &&
  [ "$(field CapBnd)" = 0000000000000000 ] && [ "$(field NoNewPrivs)" = 1 ] && [ "$(field Seccomp)" = 2 ]
verdict $? "sandbox: uid $uid (dynamic), CapEff $(field CapEff), CapBnd $(field CapBnd), NoNewPrivs $(field NoNewPrivs), Seccomp $(field Seccomp)"
# Everything servy's user could write to, seen from inside servy's own namespaces
# (mounts, user namespace): only its private /tmp and /var/tmp, and its state directory
# (StateDirectory=servy, for [acme]), may remain.
gid=$(field Gid)
writable=$(ct nsenter --target "$main_pid" --mount --user --setuid "$uid" --setgid "$gid" \
  find / \( -path /proc -o -path /sys \) -prune -o \( -type d -o -type f \) -writable -print 2>/dev/null |
  sort | tr '\n' ' ' || true)
ct nsenter --target "$main_pid" --mount --user --setuid "$uid" --setgid "$gid" \
  sh -c 'echo x >/tmp/.servy-write-test' 2>/dev/null && private=written || private="not writable"
! ct test -e /tmp/.servy-write-test || private="shared with the system"
[ "$writable" = "/tmp /var/lib/private/servy /var/tmp " ] && [ "$private" = written ]
verdict $? "sandbox: servy's user can write only to: ${writable:-nothing}(its /tmp: $private, invisible outside)"
score=$(exposure)
le "${score:-99}" 1.2
verdict $? "sandbox: systemd-analyze security servy.service in the container: exposure ${score:-unknown} (limit 1.2)"
# The hardening the units promise, as the container's systemd parsed it (a typo in a key
# is only a warning to systemd, and the score alone would hide a single lost setting).
notify=$(prop servy.service NotifyAccess) capbnd=$(prop servy.service CapabilityBoundingSet)
mdwe=$(prop servy.service MemoryDenyWriteExecute) procs=$(prop servy.service ProtectProc)
devices=$(prop servy.service DevicePolicy) filter=$(prop servy.service SystemCallFilter | wc -w)
# Address lists in a stable order: systemd prints them in its own.
addresses() { prop servy-metrics.socket "$1" | tr ' ' '\n' | LC_ALL=C sort | paste -sd' '; }
allow=$(addresses IPAddressAllow) deny=$(addresses IPAddressDeny)
[ "$notify" = main ] && [ -z "$capbnd" ] && [ "$mdwe" = yes ] && [ "$procs" = invisible ] &&
  [ "$devices" = closed ] && [ "$filter" -gt 1 ] && [ "$allow" = "127.0.0.0/8 ::1/128" ] && [ "$deny" = "0.0.0.0/0 ::/0" ]
verdict $? "sandbox: NotifyAccess=$notify CapabilityBoundingSet=${capbnd:-(empty)} MemoryDenyWriteExecute=$mdwe ProtectProc=$procs DevicePolicy=$devices SystemCallFilter: $filter entries; metrics socket IPAddressAllow=$allow IPAddressDeny=$deny"

# Asset paths for k6: --list-assets prints them percent-encoded; encode anything raw.
paths=$("$bindir/servy" --list-assets | python3 -c 'import sys, urllib.parse
print(",".join(urllib.parse.quote(l.strip(), safe="/%") for l in sys.stdin if l.strip()))')

# load NAME DURATION [BASE [K6 FLAGS...]]: k6 with 10 users over the site's assets, in the
# background (k6_pid), summary in $work/k6-NAME.json. No usage report: nothing may leave
# this machine.
load() {
  k6 run --quiet --no-color --no-usage-report --address 127.0.0.1:0 --summary-export "$work/k6-$1.json" "${@:4}" \
    -e BASE="${3:-$base}" -e PATHS="$paths" -e VUS=10 -e DURATION="$2" "$here/load.js" >"$work/k6-$1.log" 2>&1 &
  k6_pid=$!
}

# --- 6. graceful stop -----------------------------------------------------------------------
# The largest asset, identity-encoded, read slowly: still in flight when the stop comes.
largest=$(tr , '\n' <<<"$paths" | while read -r p; do
  echo "$(curl -sS -m 10 -o /dev/null -w '%{size_download}' "$base$p") $p"
done | sort -n | tail -n1)
size=${largest%% *}
asset=${largest#* }
rate=$((size / 4 + 1))
curl -sS -m 10 -o "$work/full" "$base$asset"
echo 0 >"$work/progress"
python3 "$here/slowget.py" "$base$asset" "$rate" "$work/slow" "$work/progress" >"$work/slowget.out" 2>&1 &
slow_pid=$!
sleep 1
at_stop=$(cat "$work/progress")
stop_start=$(now)
ct timeout 30 systemctl stop servy.service 2>/dev/null # (it warns that the sockets remain)
stop_s=$(elapsed "$stop_start" "$(now)")
wait "$slow_pid" && slow_ok=0 || slow_ok=1
read -r slow_status slow_bytes slow_s <"$work/slowget.out" || true
result=$(prop servy.service Result)
# More than the socket buffers hold was still unsent at the stop, so servy itself had to
# finish it; and within limits.shutdown_grace (10 s).
[ "$slow_ok" = 0 ] && [ "$slow_status" = 200 ] && cmp -s "$work/slow" "$work/full" && [ "$result" = success ] &&
  [ "$at_stop" -lt "$((size - 65536))" ] && le "$stop_s" 10
verdict $? "graceful stop: $asset: ${slow_bytes:-0} of $size bytes arrived intact in ${slow_s:-?} s, $at_stop of them before the stop; stop took $stop_s s; Result=$result"

# --- 5. zero-downtime restart ---------------------------------------------------------------
http_code "$base/" >/dev/null # activate again
# Over HTTPS at the same time (k6 cannot be given the test CA; the certificate itself is
# checked with curl above).
load restart-https 15s "$https_base" --insecure-skip-tls-verify
k6_https_pid=$k6_pid
load restart 15s
sleep 2
pids=()
restart_times=()
for _ in 1 2 3 4 5; do
  t=$(now)
  ct timeout 30 systemctl restart servy.service
  restart_times+=("$(elapsed "$t" "$(now)")")
  pids+=("$(prop servy.service MainPID)")
  sleep 2
done
wait "$k6_pid" && k6_ok=0 || k6_ok=1
reqs=$(jq -r '.metrics.http_reqs.count // 0' "$work/k6-restart.json" 2>/dev/null || echo 0)
fails=$(jq -r '.metrics.http_req_failed.passes // "?"' "$work/k6-restart.json" 2>/dev/null || echo "?")
distinct=$(printf '%s\n' "${pids[@]}" | sort -u | wc -l)
[ "$k6_ok" = 0 ] && [ "$reqs" -gt 0 ] && [ "$fails" = 0 ] && [ "$distinct" = 5 ]
verdict $? "zero-downtime restart: 5 restarts (${restart_times[*]} s) under 10 VUs: $reqs requests, $fails failed"
[ "$k6_ok" = 0 ] || tail -n 20 "$work/k6-restart.log" | sed 's/^/    /'
wait "$k6_https_pid" && k6_ok=0 || k6_ok=1
reqs=$(jq -r '.metrics.http_reqs.count // 0' "$work/k6-restart-https.json" 2>/dev/null || echo 0)
fails=$(jq -r '.metrics.http_req_failed.passes // "?"' "$work/k6-restart-https.json" 2>/dev/null || echo "?")
[ "$k6_ok" = 0 ] && [ "$reqs" -gt 0 ] && [ "$fails" = 0 ] && [ "$distinct" = 5 ]
verdict $? "zero-downtime restart over HTTPS: the same 5 restarts under 10 more VUs: $reqs requests, $fails failed"
[ "$k6_ok" = 0 ] || tail -n 20 "$work/k6-restart-https.log" | sed 's/^/    /'

# --- 7. memory ------------------------------------------------------------------------------
# servy restarted under MemoryMax=64M (sections 7 and 10). Sets mem (its cgroup directory),
# limit_file, anon_key (memory.stat's anonymous memory) and oom_file, for cgroup v1 or v2.
limit_memory() {
  ct systemctl set-property --runtime servy.service MemoryMax=64M
  ct systemctl restart servy.service
  http_code "$base/" >/dev/null
  local cg
  cg=$(prop servy.service ControlGroup)
  if ct test -f "/sys/fs/cgroup/memory$cg/memory.limit_in_bytes"; then
    mem=/sys/fs/cgroup/memory$cg limit_file=memory.limit_in_bytes anon_key=total_rss oom_file=memory.oom_control
  else
    mem=/sys/fs/cgroup$cg limit_file=memory.max anon_key=anon oom_file=memory.events
  fi
}
anon() { ct awk -v k="$anon_key" '$1 == k { print $2 }' "$mem/memory.stat" 2>/dev/null || echo 0; }

limit_memory
limit=$(ct cat "$mem/$limit_file")
pid_before=$(prop servy.service MainPID)
restarts_before=$(prop servy.service NRestarts)
load memory 10s
anon_peak=0
current_peak=0
while kill -0 "$k6_pid" 2>/dev/null; do
  anon=$(anon)
  current=$(ct cat "$mem/memory.usage_in_bytes" 2>/dev/null || ct cat "$mem/memory.current" 2>/dev/null || echo 0)
  [ "${anon:-0}" -le "$anon_peak" ] || anon_peak=$anon
  [ "${current:-0}" -le "$current_peak" ] || current_peak=$current
  sleep 0.25
done
wait "$k6_pid" && k6_ok=0 || k6_ok=1
if ct test -f "$mem/memory.max_usage_in_bytes"; then
  peak=$(ct cat "$mem/memory.max_usage_in_bytes") peak_source="memory.max_usage_in_bytes (cgroup v1)"
elif ct test -f "$mem/memory.peak"; then
  peak=$(ct cat "$mem/memory.peak") peak_source="memory.peak"
else
  peak=$current_peak peak_source="max of memory.current sampled every 0.25 s"
fi
oom=$(ct awk '$1 == "oom_kill" { print $2 }' "$mem/$oom_file")
reqs=$(jq -r '.metrics.http_reqs.count // 0' "$work/k6-memory.json" 2>/dev/null || echo 0)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
[ "$limit" = 67108864 ] && ct grep -qx "$pid_before" "$mem/cgroup.procs" && [ "$k6_ok" = 0 ] && [ "${oom:-0}" = 0 ] &&
  [ "$(prop servy.service MainPID)" = "$pid_before" ] && [ "$(prop servy.service NRestarts)" = "$restarts_before" ]
verdict $? "memory: MemoryMax=64M, 10 VUs, $reqs requests, oom_kill ${oom:-?}; peak $(mib "$peak") ($peak_source), anonymous peak $(mib "$anon_peak") (sampled)"
ct systemctl set-property --runtime servy.service MemoryMax=infinity

# --- 8. watchdog ----------------------------------------------------------------------------
mkdir -p "$ct_root/etc/systemd/system/servy.service.d"
printf '[Service]\nWatchdogSec=%s\n' "$watchdog_test" >"$ct_root/etc/systemd/system/servy.service.d/test-watchdog.conf"
ct systemctl daemon-reload
ct systemctl restart servy.service
http_code "$base/" >/dev/null
frozen=$(prop servy.service MainPID)
restarts_before=$(prop servy.service NRestarts)
cursor=$(ct journalctl -u servy.service -n 0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p')
freeze=$(now)
ct sh -c 'kill -STOP "$1"' sh "$frozen" # minbase has no /bin/kill
replaced() { [ "$(prop servy.service ActiveState)" = active ] && [ "$(prop servy.service MainPID)" != "$frozen" ]; }
wait_for $((watchdog_test + 10)) replaced && back=$(now) || back=
timeout_line=$(ct journalctl -u servy.service --after-cursor="$cursor" -o short-unix --no-pager | grep -m1 'Watchdog timeout' || true)
detect_s=$(elapsed "$freeze" "${timeout_line%% *}")
code=$(http_code "$base/" || true)
[ -n "$back" ] && [ -n "$timeout_line" ] && le "$detect_s" "$((watchdog_test + 1))" &&
  [ "$(prop servy.service NRestarts)" -gt "$restarts_before" ] && [ "$code" = 200 ]
verdict $? "watchdog: SIGSTOP → timeout after $detect_s s (WatchdogSec=${watchdog_test}s), serving again after $([ -n "$back" ] && elapsed "$freeze" "$back" || echo never) s"
rm -f "$ct_root/etc/systemd/system/servy.service.d/test-watchdog.conf"

# --- 9. a stalled journal -------------------------------------------------------------------
# journald stopped for 20 s under the 10-user load: requests must not wait on the log.
# servy drops what its queue cannot hold, counts it, and says so once journald is back.
ct systemctl restart servy.service
http_code "$base/" >/dev/null
invocation=$(prop servy.service InvocationID)
cursor=$(ct journalctl -u servy.service -n 0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p')
journald=$(ct systemctl show -p MainPID --value systemd-journald.service)
load stall 24s
sleep 2
ct sh -c 'kill -STOP "$1"' sh "$journald"
sleep 20
ct sh -c 'kill -CONT "$1"' sh "$journald"
wait "$k6_pid" && k6_ok=0 || k6_ok=1
reqs=$(jq -r '.metrics.http_reqs.count // 0' "$work/k6-stall.json" 2>/dev/null || echo 0)
fails=$(jq -r '.metrics.http_req_failed.passes // "?"' "$work/k6-stall.json" 2>/dev/null || echo "?")
max_ms=$(jq -r '.metrics.http_req_duration.max // 99999' "$work/k6-stall.json" 2>/dev/null || echo 99999)
dropped() { curl -sS -m 5 "http://127.0.0.1:$metrics_port/metrics" | awk '$1 == "servy_log_lines_dropped_total" { print $2 }'; }
# No grep -q: under pipefail its early exit would fail journalctl with SIGPIPE.
warned() { ct journalctl -u servy.service --after-cursor="$cursor" --no-pager | grep 'lines were dropped' >/dev/null; }
wait_for 20 warned && warning=yes || warning=no
lost=$(dropped || true)
[ "$k6_ok" = 0 ] && [ "$reqs" -gt 0 ] && [ "$fails" = 0 ] && le "$max_ms" 1000 &&
  [ "$(prop servy.service InvocationID)" = "$invocation" ] && [ "${lost:-0}" != 0 ] && [ "$warning" = yes ]
verdict $? "stalled journal: journald SIGSTOP 20 s under 10 VUs: $reqs requests, $fails failed, max latency ${max_ms} ms; same invocation: $([ "$(prop servy.service InvocationID)" = "$invocation" ] && echo yes || echo no); dropped lines ${lost:-?}, warning in the journal: $warning"
[ "$k6_ok" = 0 ] || tail -n 20 "$work/k6-stall.log" | sed 's/^/    /'

# --- 10. idle connections -------------------------------------------------------------------
# 10,000 keep-alive connections, one request each, held idle under MemoryMax=64M: no OOM
# kill, and a fresh request is served within 1 s meanwhile.
limit_memory
pid_before=$(prop servy.service MainPID)
anon_before=$(anon)
rm -f "$work/idle-ready"
timeout 120 python3 "$here/idleconns.py" "$base/" 10000 1 "$work/idle-ready" >"$work/idleconns.out" 2>&1 &
idle_pid=$!
idle_ready() { [ -s "$work/idle-ready" ]; }
wait_for 90 idle_ready && sleep 1
anon_held=$(anon)
wait "$idle_pid" && idle_ok=0 || idle_ok=1
read -r _ held _ _ _ fresh_ms _ idle_failed _ _ <"$work/idleconns.out" || true
oom=$(ct awk '$1 == "oom_kill" { print $2 }' "$mem/$oom_file")
per_conn=$(awk -v a="${anon_before:-0}" -v b="${anon_held:-0}" 'BEGIN { printf "%.1f", (b - a) / 1024 / 10000 }')
[ "$idle_ok" = 0 ] && [ "${held:-0}" = 10000 ] && le "${fresh_ms:-9999}" 1000 && [ "${oom:-0}" = 0 ] &&
  [ "$(prop servy.service MainPID)" = "$pid_before" ]
verdict $? "idle connections: ${held:-0} of 10000 held under MemoryMax=64M, fresh request in ${fresh_ms:-?} ms, failed ${idle_failed:-?}, oom_kill ${oom:-?}; anonymous memory +${per_conn} KiB per connection"
[ "$idle_ok" = 0 ] || sed 's/^/    /' "$work/idleconns.out"
ct systemctl set-property --runtime servy.service MemoryMax=infinity

# --- the private-network variant ------------------------------------------------------------
# The shipped drop-in: the site is still served through the passed socket, while servy
# itself can no longer reach the stub on the same loopback.
cp "$repo/server/systemd/servy.service.d/private-network.conf" "$ct_root/etc/systemd/system/servy.service.d/"
ct systemctl daemon-reload
ct systemctl restart servy.service
code=$(http_code "$base/")
alias_code=$(http_code "$base/$alias_name")
score=$(exposure)
[ "$code" = 200 ] && [ "$alias_code" = 404 ] && le "${score:-99}" 0.6
verdict $? "private network: / $code through the passed socket, /$alias_name $alias_code (no fetch possible), exposure ${score:-unknown} (limit 0.6)"

# --- a masked metrics socket ------------------------------------------------------------------
# Who wants no metrics listener masks the socket (NixOS does); servy must still start and
# serve. install.sh put the unit in /etc, where a mask is the unit replaced by /dev/null.
rm -f "$ct_root/etc/systemd/system/servy.service.d/private-network.conf"
ct systemctl stop servy-metrics.socket servy.service 2>/dev/null
ln -sf /dev/null "$ct_root/etc/systemd/system/servy-metrics.socket"
ct systemctl daemon-reload
code=$(http_code "$base/")
metrics=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$metrics_port/metrics" 2>/dev/null || true)
state=$(prop servy.service ActiveState)
[ "$code" = 200 ] && [ "$state" = active ] && [ "$metrics" = 000 ]
verdict $? "masked metrics socket: servy.service $state, / $code, metrics port: ${metrics/#000/closed}"

# --- ACME: a certificate from pebble, kept in the state directory ---------------------------
# Let's Encrypt's test CA runs on the host (the container shares its network) and really
# validates: its resolver is pebble-challtestsrv answering 127.0.0.1 for every name, and
# its TLS-ALPN-01 port is servy's https socket (which keeps its file certificates for
# other names). servy is given no state_dir: it must use the unit's StateDirectory=servy.
pebble_port=$((port + 20)) pebble_mgmt=$((port + 21)) dns_port=$((port + 22)) dns_mgmt=$((port + 23))
acme_domain=site.servy.test
acme_ok=1
for p in $pebble_port $pebble_mgmt $dns_port $dns_mgmt; do
  ! in_use "$p" || { acme_ok=0; fail "acme: port $p is taken; choose another SERVY_TEST_PORT"; }
done
if [ "$acme_ok" = 1 ] && command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null; then
  bash "$repo/tests/tls/mkcert.sh" "$work/pebble-tls" 127.0.0.1 localhost
  printf '{"pebble": {"listenAddress": "127.0.0.1:%s", "managementListenAddress": "127.0.0.1:%s", "certificate": "%s", "privateKey": "%s", "httpPort": %s, "tlsPort": %s, "ocspResponderURL": "", "externalAccountBindingRequired": false}}\n' \
    "$pebble_port" "$pebble_mgmt" "$work/pebble-tls/fullchain.pem" "$work/pebble-tls/key.pem" "$port" "$https_port" \
    >"$work/pebble.json"
  pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$dns_port" \
    -http01 "" -https01 "" -tlsalpn01 "" -management "127.0.0.1:$dns_mgmt" >"$work/dns.log" 2>&1 &
  PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
    pebble -config "$work/pebble.json" -dnsserver "127.0.0.1:$dns_port" >"$work/pebble.log" 2>&1 &
  pebble_up() { curl -sS -m 2 -o /dev/null --cacert "$work/pebble-tls/ca.pem" "https://127.0.0.1:$1/$2"; }
  wait_for 10 pebble_up "$pebble_port" dir
  wait_for 10 pebble_up "$pebble_mgmt" roots/0
  curl -sS -m 5 --cacert "$work/pebble-tls/ca.pem" "https://127.0.0.1:$pebble_mgmt/roots/0" >"$work/pebble-root.pem"
  cp "$work/pebble-tls/ca.pem" "$ct_root/etc/servy/pebble-ca.pem"
  printf '\n[acme]\ndomains = ["%s"]\ndirectory = "https://127.0.0.1:%s/dir"\nca_roots = "/etc/servy/pebble-ca.pem"\nretry_min = "1s"\n' \
    "$acme_domain" "$pebble_port" >>"$ct_root/etc/servy/servy.toml"
  orders() { grep -c 'POST /order-plz' "$work/pebble.log" || true; }
  cursor_now() { ct journalctl -u servy.service -n 0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p'; }
  journal_since() { ct journalctl -u servy.service --after-cursor="$1" --no-pager -o cat; }
  # "200 serial=…": the status over HTTPS (verified against pebble's root) and the serial.
  https_serial() {
    local code
    code=$(curl -sS -m 10 -o /dev/null -w '%{http_code}' --cacert "$work/pebble-root.pem" \
      --resolve "$acme_domain:$https_port:127.0.0.1" "https://$acme_domain:$https_port/" || true)
    echo "$code $(openssl s_client -connect "127.0.0.1:$https_port" -servername "$acme_domain" </dev/null 2>/dev/null |
      openssl x509 -noout -serial 2>/dev/null)"
  }
  cursor=$(cursor_now)
  acme_start=$(now)
  ct systemctl restart servy.service
  issued() { journal_since "$cursor" | grep -q 'acme: certificate issued and installed'; }
  wait_for 60 issued && took=$(elapsed "$acme_start" "$(now)") || took=never
  first=$(https_serial)
  mode=$(ct sh -c 'stat -c %a /var/lib/private/servy/acme/*/certificate.pem' 2>/dev/null || echo missing)
  [ "$took" != never ] && [ "${first%% *}" = 200 ] && [ "$mode" = 600 ]
  verdict $? "acme: pebble issued a certificate $took s after the restart (TLS-ALPN-01 on the passed https socket); HTTPS ${first%% *}, ${first#* }; the state file's mode $mode"
  orders_before=$(orders)
  cursor=$(cursor_now)
  ct systemctl restart servy.service
  second=$(https_serial)
  sleep 2 # room for a wrongly eager order to reach pebble
  stored=$(journal_since "$cursor" | grep -c 'acme: serving the stored certificate' || true)
  [ "$second" = "$first" ] && [ "$stored" -ge 1 ] && [ "$(orders)" = "$orders_before" ]
  verdict $? "acme: after a restart the certificate comes from the state directory (${second#* }); orders at pebble: $orders_before before, $(orders) after"
elif [ "$acme_ok" = 1 ]; then
  fail "acme: pebble is not installed (tests/install-deps.sh installs it)"
fi

echo "total run time $((SECONDS - started)) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
