#!/usr/bin/env bash
# Vouch in a minute, on one Debian 12 machine: installs what is missing, builds, starts a
# private PostgreSQL under .vouch/ (git-ignored) and a stand-in APNs, runs vouchd on
# 127.0.0.1:8080 with a freshly generated test identity CA, enrolls a simulated fleet of 20
# devices whose attestations are signed by a stand-in Apple hierarchy; vouchd pushes them, they
# wake up, answer the attestation request queued at enrollment and a DeviceInformation command;
# then it shows what vouchd knows.
#
# Usage: deploy/quickstart.sh [--once] [--devices N]
#   --once   stop everything after the demonstration instead of waiting for Ctrl-C
set -euo pipefail

once=false
devices=20
while [ $# -gt 0 ]; do
    case "$1" in
    --once) once=true ;;
    --devices) devices=$2; shift ;;
    -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
state=$repo/.vouch
build=$repo/build-quickstart
listen=127.0.0.1:8080
url=http://$listen

packages=(meson ninja-build pkg-config gcc libevent-dev libcurl4-openssl-dev libnghttp2-dev
          libssl-dev libplist-dev libpq-dev libcmocka-dev postgresql postgresql-client openssl
          python3 curl python3-cryptography)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    [ "$(id -u)" -eq 0 ] || { echo "quickstart: run as root to install packages" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== building"
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" >/dev/null
vouchd=$build/server/vouchd
vouchctl=$build/cli/vouchctl
sim=$build/tests/sim/vouch-sim
standin=$build/tests/apns/apns-standin

mkdir -p "$state"
vouchd_pid=
standin_pid=
serve_pid=
cleanup() {
    trap - EXIT INT TERM
    echo "== stopping"
    for pid in $serve_pid $vouchd_pid $standin_pid; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            wait "$pid" 2>/dev/null || true
        fi
    done
    /usr/bin/python3 "$repo/tests/lib/pg.py" stop "$state/pg" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

echo "== starting PostgreSQL in $state/pg"
conninfo=$(/usr/bin/python3 "$repo/tests/lib/pg.py" start "$state/pg" | tail -1)
db_conninfo=${conninfo/dbname=postgres/dbname=vouch}
if ! psql "$conninfo" -tAc "SELECT 1 FROM pg_database WHERE datname = 'vouch'" | grep -q 1; then
    psql "$conninfo" -qc "CREATE DATABASE vouch"
fi

echo "== test identity CA in $state/sim"
"$sim" init-ca --dir "$state/sim" >/dev/null

echo "== stand-in APNs (HTTP/2 over TLS, client certificate required) in $state/apns"
[ -s "$state/apns/push.pem" ] || "$repo/tests/apns/make-certs.sh" "$state/apns" >/dev/null 2>&1
topic=$(cat "$state/apns/topic")
: >"$state/apns/pushes.log"
"$standin" --listen 127.0.0.1:0 --control 127.0.0.1:0 --cert "$state/apns/server.pem" \
    --key "$state/apns/server.key" --client-ca "$state/apns/push-ca.pem" \
    --notify-dir "$state/apns" >"$state/apns/ready" 2>"$state/apns/standin.log" &
standin_pid=$!
for _ in $(seq 100); do
    grep -q ready "$state/apns/ready" 2>/dev/null && break
    sleep 0.05
done
apns_listen=$(sed -n 's/.*listen=\([^ ]*\).*/\1/p' "$state/apns/ready")
[ -n "$apns_listen" ] || { echo "apns-standin did not start"; cat "$state/apns/standin.log"; exit 1; }

token_file=$state/admin_token
[ -s "$token_file" ] || openssl rand -hex 24 >"$token_file"
token=$(cat "$token_file")
cat >"$state/vouch.conf" <<CONF
# Written by deploy/quickstart.sh
listen = $listen
database_url = $db_conninfo
public_url = https://mdm.example.invalid
identity_ca = $state/sim/ca.pem
# The simulator's stand-in for Apple's attestation hierarchy (Apple's Sub CA is not public).
attestation_roots = $state/sim/apple-root.pem
admin_token = $token
# Pushes go to the stand-in with a push certificate made for it (topic $topic).
apns_url = https://$apns_listen
apns_cert = $state/apns/push.pem
apns_key = $state/apns/push.key
apns_ca = $state/apns/ca.pem
CONF

# The demo database of an older checkout may hold another text of a migration (the schema is
# not released yet): vouchd refuses it, and this private demo database is simply made again.
if ! "$vouchd" migrate --config "$state/vouch.conf" >"$state/migrate.log" 2>&1; then
    if grep -q "another text of migration" "$state/migrate.log"; then
        echo "== the demo database holds an older schema: recreating it, and the simulated fleet"
        psql "$conninfo" -qc "DROP DATABASE vouch WITH (FORCE)" -c "CREATE DATABASE vouch"
        # The simulated devices cache their attestations for 7 days, made for nonces of the
        # old database: they start over with it.
        rm -rf "$state/sim"
        "$sim" init-ca --dir "$state/sim" >/dev/null
        "$vouchd" migrate --config "$state/vouch.conf" >"$state/migrate.log" 2>&1 ||
            { cat "$state/migrate.log"; exit 1; }
    else
        cat "$state/migrate.log"
        exit 1
    fi
fi

echo "== starting vouchd on $listen (log: $state/vouchd.log)"
"$vouchd" --config "$state/vouch.conf" >"$state/vouchd.log" 2>&1 &
vouchd_pid=$!
for _ in $(seq 100); do
    curl -sf "$url/healthz" >/dev/null 2>&1 && break
    kill -0 "$vouchd_pid" 2>/dev/null || { tail -20 "$state/vouchd.log"; exit 1; }
    sleep 0.1
done
curl -sf "$url/healthz" >/dev/null || { echo "vouchd did not become healthy"; tail -20 "$state/vouchd.log"; exit 1; }

export VOUCH_URL=$url VOUCH_ADMIN_TOKEN=$token

echo "== enrolling $devices simulated devices (Authenticate + TokenUpdate, signed with Mdm-Signature)"
"$sim" enroll --url "$url" --dir "$state/sim" --devices "$devices" --topic "$topic"

# Like real devices, the simulated ones connect only when APNs pushes them: each enrollment's
# attestation request was pushed, and so will be the command queued below.
echo "== the devices wake up when pushed: they answer the attestation request each enrollment queued"
"$sim" serve --url "$url" --dir "$state/sim" --devices "$devices" --quiet --from-start \
    --pushes "$state/apns/pushes.log" --expect-pushes $((2 * devices)) --max-seconds 120 \
    >"$state/serve.json" 2>"$state/serve.log" &
serve_pid=$!

echo "== queueing DeviceInformation for every device"
udids=$("$vouchctl" --json devices | /usr/bin/python3 -c 'import json,sys; print(",".join(d["udid"] for d in json.load(sys.stdin)))')
cat >"$state/device-information.plist" <<'PLIST'
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Command</key>
	<dict>
		<key>RequestType</key>
		<string>DeviceInformation</string>
		<key>Queries</key>
		<array>
			<string>UDID</string><string>SerialNumber</string><string>OSVersion</string>
			<string>BuildVersion</string><string>ProductName</string><string>Model</string>
		</array>
	</dict>
</dict>
</plist>
PLIST
IFS=, read -r -a udid_list <<<"$udids"
"$vouchctl" enqueue "${udid_list[@]}" --file "$state/device-information.plist" >/dev/null

echo "== vouchd pushes them; each connects (Idle), runs the command and reports Acknowledged"
wait "$serve_pid" || { echo "vouch-sim serve failed:"; tail -20 "$state/serve.log"; exit 1; }
serve_pid=
cat "$state/serve.json"

echo
echo "== what vouchd knows (vouchctl devices)"
"$vouchctl" devices
echo
enrolled=$("$vouchctl" --json devices | /usr/bin/python3 -c 'import json,sys; print(sum(1 for d in json.load(sys.stdin) if d["enrolled"]))')
echo "$enrolled of $devices devices enrolled; each answered DeviceInformation (vouchctl commands UDID shows it)."
"$vouchctl" --json devices | /usr/bin/python3 -c '
import collections, json, sys
counts = collections.Counter(d["attestation"]["status"] for d in json.load(sys.stdin))
print("attestation: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) +
      " (models too old for attestation answer without it: unsupported)")'

echo
echo "Point vouchctl at this server:"
echo "  export VOUCH_URL=$url VOUCH_ADMIN_TOKEN=$token"
echo "  $vouchctl devices"
echo "  $vouchctl device ${udid_list[0]}"
echo "  $vouchctl commands ${udid_list[0]}"

[ "$enrolled" -eq "$devices" ] || { echo "quickstart: expected $devices enrolled devices" >&2; exit 1; }
if $once; then
    exit 0
fi
echo
echo "vouchd is running. Ctrl-C stops it and PostgreSQL."
wait "$vouchd_pid"
