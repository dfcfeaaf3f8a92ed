#!/usr/bin/env bash
# Vouch on one Debian 12 machine: installs what is missing, builds, starts a private PostgreSQL
# (see below), a stand-in APNs and a small web-hook receiver, runs vouchd on 127.0.0.1:8080 (--listen)
# with its own ACME server (device identities are issued by a CA made with `vouchctl ca init`;
# state in .vouch/, git-ignored), and enrolls a simulated fleet of 50 iPhones, iPads and Apple
# TVs whose attestations are signed by stand-in Apple hierarchies. Each device downloads the
# enrollment profile and gets its identity certificate over ACME (device-attest-01) for a
# P-384 key Apple attested, as a real one does; models too old to attest keep a SCEP-style
# identity. Two more devices misbehave and are refused by the ACME server: one orders with a
# ClientIdentifier another device already used, one asks for a certificate for another key than
# the attested one. Among the enrolled: one device that answers with another device's
# attestation, one that replays an attestation made for a nonce vouchd never sent, one whose
# attestation Apple made 31 days ago (its verdict has expired), and one that is erased and
# enrolls again with a new identity certificate (a new enrollment generation, attested anew).
# vouchd pushes them; they wake up, answer the attestation request queued at enrollment and a
# DeviceInformation command; then it shows the identities, the refusals, every verdict, the
# web-hook events, and how to ask for a re-attestation; last, the dashboard's URL (/ui/) and a
# read token to paste into it.
#
# PostgreSQL's files: as root, the server runs as the postgres user, who cannot enter a clone in
# root's home (mode 700), so they go to that user's home, one cluster per clone:
# /var/lib/postgresql/vouch-quickstart/<hash of the clone's path>. Otherwise .vouch/pg.
#
# Usage: deploy/quickstart.sh [--once] [--listen ADDR:PORT] [--devices N] [--identity acme|scep]
#   --once              stop everything after the demonstration instead of waiting for Ctrl-C
#   --listen ADDR:PORT  where vouchd listens (default 127.0.0.1:8080)
#   --devices N         the size of the honest part of the fleet (default 47; 3 misbehave
#                       once enrolled; with acme, 2 more are refused an identity)
#   --identity KIND     acme (default): identities from vouchd's ACME server; scep: the
#                       simulator's own CA issues them, as a SCEP server would (no ACME server)
set -euo pipefail

once=false
devices=47
listen=127.0.0.1:8080
identity=acme
usage() { awk 'NR > 1 && /^set -euo/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
    --once) once=true ;;
    --devices | --listen | --identity)
        [ $# -ge 2 ] || { echo "quickstart: $1 needs a value" >&2; exit 2; }
        case "$1" in
        --devices) devices=$2 ;;
        --listen) listen=$2 ;;
        *) identity=$2 ;;
        esac
        shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "quickstart: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[[ "$devices" =~ ^[1-9][0-9]*$ ]] || { echo "quickstart: --devices takes a positive number" >&2; exit 2; }
[[ "$listen" =~ ^[^:]+:[0-9]+$ ]] || { echo "quickstart: --listen takes ADDR:PORT" >&2; exit 2; }
[[ "$identity" =~ ^(acme|scep)$ ]] || { echo "quickstart: --identity takes acme or scep" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
state=$repo/.vouch
build=$repo/build-quickstart
url=http://$listen

packages=(meson ninja-build pkg-config gcc libevent-dev libcurl4-openssl-dev libnghttp2-dev
          libssl-dev libplist-dev libpq-dev libjansson-dev libcbor-dev libcmocka-dev postgresql
          postgresql-client openssl python3 curl python3-cryptography)
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
liar_pid=
replay_pid=
sleeper_pid=
wiped_pid=
hook_pid=
cleanup() {
    trap - EXIT INT TERM
    echo "== stopping"
    for pid in $serve_pid $liar_pid $replay_pid $sleeper_pid $wiped_pid $vouchd_pid $standin_pid \
        $hook_pid; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            wait "$pid" 2>/dev/null || true
        fi
    done
    /usr/bin/python3 "$repo/tests/lib/pg.py" stop "$pg_dir" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

if [ "$(id -u)" -eq 0 ]; then
    pg_home=$(getent passwd postgres | cut -d: -f6)
    pg_dir=$pg_home/vouch-quickstart/$(printf '%s' "$repo" | sha256sum | cut -c1-16)
else
    pg_dir=$state/pg
fi
# A cluster this clone's .vouch/ does not know of belongs to an earlier clone at the same path,
# whose simulated fleet is gone: start over.
if [ -d "$pg_dir" ] && [ ! -e "$state/pg-dir" ]; then
    /usr/bin/python3 "$repo/tests/lib/pg.py" stop "$pg_dir" immediate >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
fi
mkdir -p "$(dirname "$pg_dir")"
echo "== starting PostgreSQL in $pg_dir"
conninfo=$(/usr/bin/python3 "$repo/tests/lib/pg.py" start "$pg_dir" | tail -1)
echo "$pg_dir" >"$state/pg-dir"
db_conninfo=${conninfo/dbname=postgres/dbname=vouch}
# Every run tells the story from its beginning: a new demo database and new simulated devices
# (whose attestation caches belong to the database they answered).
psql "$conninfo" -qc "DROP DATABASE IF EXISTS vouch WITH (FORCE)" -c "CREATE DATABASE vouch"

# Simulated fleets, each with its own identity CA and stand-in Apple hierarchy (vouchd trusts
# them all): the honest one; two devices of which the first answers with the second's
# attestation; one device that replays an attestation made for a nonce vouchd never sent; one
# whose clock says 31 days ago (Apple made its attestation then); and the honest fleet's first
# device once more, erased, with a new identity.
fleet_dirs=(sim liar replay sleeper wiped)
fleets() {
    for d in "${fleet_dirs[@]}"; do
        rm -rf "${state:?}/$d"
        "$sim" init-ca --dir "$state/$d" >/dev/null
    done
    for d in "${fleet_dirs[@]}"; do cat "$state/$d/ca.pem"; done >"$state/identity-ca.pem"
    for d in "${fleet_dirs[@]}"; do cat "$state/$d/apple-root.pem"; done \
        >"$state/attestation-roots.pem"
}
echo "== test identity CAs and stand-in Apple hierarchies in $state/{${fleet_dirs[*]}}"
fleets

# vouchd's ACME server issues the devices' identities with its own CA (kept across runs; a
# production CA is made once, the same way, and its key stays on the server).
acme_config=
sim_identity=(--identity local)
if [ "$identity" = acme ]; then
    if [ ! -s "$state/acme-ca.pem" ] || [ ! -s "$state/acme-ca.key" ]; then
        rm -f "$state/acme-ca.pem" "$state/acme-ca.key"
        echo "== the ACME server's CA (vouchctl ca init): $state/acme-ca.pem"
        "$vouchctl" ca init --cert "$state/acme-ca.pem" --key "$state/acme-ca.key" >/dev/null
    fi
    acme_config="# vouchd's ACME server issues device identities for keys Apple attested (device-attest-01);
# the enrollment profile asks for one (enroll_identity = acme is the default with acme_ca_cert),
# and vouchd trusts the identities this CA issues besides identity_ca's.
acme_ca_cert = $state/acme-ca.pem
acme_ca_key = $state/acme-ca.key"
    sim_identity=(--identity acme)
fi

# Waits (5 s at most) until FILE holds a line matching PATTERN: a helper saying it is ready.
wait_for_line() {
    for _ in $(seq 100); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 0 # the caller checks what it needs and says what failed
}

echo "== stand-in APNs (HTTP/2 over TLS, client certificate required) in $state/apns"
[ -s "$state/apns/push.pem" ] || "$repo/tests/apns/make-certs.sh" "$state/apns" >/dev/null 2>&1
topic=$(cat "$state/apns/topic")
: >"$state/apns/pushes.log"
"$standin" --listen 127.0.0.1:0 --control 127.0.0.1:0 --cert "$state/apns/server.pem" \
    --key "$state/apns/server.key" --client-ca "$state/apns/push-ca.pem" \
    --notify-dir "$state/apns" >"$state/apns/ready" 2>"$state/apns/standin.log" &
standin_pid=$!
wait_for_line "$state/apns/ready" ready
apns_listen=$(sed -n 's/.*listen=\([^ ]*\).*/\1/p' "$state/apns/ready")
[ -n "$apns_listen" ] || { echo "apns-standin did not start"; cat "$state/apns/standin.log"; exit 1; }

token_file=$state/admin_token
# vouchd wants an admin_token of at least 32 characters: this one has 64.
[ -s "$token_file" ] || openssl rand -hex 32 >"$token_file"
token=$(cat "$token_file")
hook_secret=$(openssl rand -hex 16)

echo "== a web-hook receiver that checks each event's HMAC (log: $state/webhooks.log)"
: >"$state/webhooks.log"
/usr/bin/python3 "$repo/deploy/webhook-receiver.py" --secret "$hook_secret" \
    --log "$state/webhooks.log" >"$state/webhook.ready" 2>&1 &
hook_pid=$!
wait_for_line "$state/webhook.ready" listening
hook_url=$(sed -n 's/^listening on \(.*\)$/\1/p' "$state/webhook.ready")
[ -n "$hook_url" ] || { echo "the web-hook receiver did not start"; exit 1; }
cat >"$state/vouch.conf" <<CONF
# Written by deploy/quickstart.sh
listen = $listen
database_url = $db_conninfo
# What devices are told (the profile's URLs, every ACME URL); the simulator reaches vouchd on
# $url and sends each request to the same path there.
public_url = https://mdm.example.invalid
# The simulator's SCEP-style identity CAs (with ACME, for the models too old to attest).
identity_ca = $state/identity-ca.pem
$acme_config
# The simulator's stand-ins for Apple's attestation hierarchy (Apple's Sub CA is not public).
attestation_roots = $state/attestation-roots.pem
# Every event goes to the receiver, signed. It is plain http on loopback: mdm.TokenUpdate events
# (the device's UnlockToken) may go to it only because webhook_allow_http says so; use https in
# production.
webhook_url = $hook_url
webhook_secret = $hook_secret
webhook_allow_http = true
admin_token = $token
# Pushes go to the stand-in with a push certificate made for it (topic $topic).
apns_url = https://$apns_listen
apns_cert = $state/apns/push.pem
apns_key = $state/apns/push.key
apns_ca = $state/apns/ca.pem
CONF

"$vouchd" migrate --config "$state/vouch.conf" >"$state/migrate.log" 2>&1 ||
    { cat "$state/migrate.log"; exit 1; }

echo "== starting vouchd on $listen (log: $state/vouchd.log)"
"$vouchd" --config "$state/vouch.conf" >"$state/vouchd.log" 2>&1 &
vouchd_pid=$!
for _ in $(seq 100); do
    curl -sf "$url/healthz" >/dev/null 2>&1 && break
    if ! kill -0 "$vouchd_pid" 2>/dev/null; then
        tail -20 "$state/vouchd.log"
        echo "quickstart: vouchd stopped (is $listen taken? --listen ADDR:PORT picks another)" >&2
        exit 1
    fi
    sleep 0.1
done
curl -sf "$url/healthz" >/dev/null || { echo "vouchd did not become healthy"; tail -20 "$state/vouchd.log"; exit 1; }

export VOUCH_URL=$url VOUCH_ADMIN_TOKEN=$token

total=$((devices + 4))
if [ "$identity" = acme ]; then
    echo "== enrolling $total simulated devices: each downloads the enrollment profile, gets its"
    echo "   identity over ACME for a P-384 key Apple attested (models too old to attest keep a"
    echo "   SCEP-style one), then Authenticate + TokenUpdate, signed with Mdm-Signature;"
    echo "   2 more devices misbehave at the ACME server and must be refused"
    # The fleet's last two: one orders with a ClientIdentifier another device already used, one
    # sends a CSR for another key than the one Apple attested.
    odd=(--devices $((devices + 2)) --acme-reuse-client-id 1 --acme-wrong-csr-key 1)
else
    echo "== enrolling $total simulated devices (Authenticate + TokenUpdate, signed with Mdm-Signature)"
    odd=(--devices "$devices")
fi
"$sim" enroll --url "$url" --dir "$state/sim" "${sim_identity[@]}" "${odd[@]}" --topic "$topic" \
    --quiet >"$state/enroll.json"
"$sim" enroll --url "$url" --dir "$state/liar" --prefix liar --devices 2 "${sim_identity[@]}" \
    --topic "$topic" --quiet >/dev/null
"$sim" enroll --url "$url" --dir "$state/replay" --prefix replay --devices 1 "${sim_identity[@]}" \
    --topic "$topic" --quiet >/dev/null
"$sim" enroll --url "$url" --dir "$state/sleeper" --prefix sleeper --devices 1 \
    "${sim_identity[@]}" --topic "$topic" --quiet >/dev/null

# Like real devices, the simulated ones connect only when APNs pushes them: each enrollment's
# attestation request was pushed, and so will be the command queued below.
echo "== the devices wake up when pushed: they answer the attestation request each enrollment queued"
"$sim" serve --url "$url" --dir "$state/sim" --devices "$devices" --quiet --from-start \
    --pushes "$state/apns/pushes.log" --expect-pushes $((2 * devices)) --max-seconds 120 \
    >"$state/serve.json" 2>"$state/serve.log" &
serve_pid=$!
# The liar's first device answers with a valid chain made for the second (udid_mismatch).
"$sim" serve --url "$url" --dir "$state/liar" --quiet --from-start --attest-as-device 1 \
    --pushes "$state/apns/pushes.log" --expect-pushes 4 --max-seconds 120 \
    >"$state/liar.json" 2>"$state/liar.log" &
liar_pid=$!
"$sim" serve --url "$url" --dir "$state/replay" --quiet --from-start --attest-tamper wrong-nonce \
    --pushes "$state/apns/pushes.log" --expect-pushes 2 --max-seconds 120 \
    >"$state/replay.json" 2>"$state/replay.log" &
replay_pid=$!
# The sleeper answers its enrollment's request with an attestation Apple made 31 days ago (by
# its clock), past attestation_max_age (30 days), and then sleeps: it answers nothing more.
"$sim" serve --url "$url" --dir "$state/sleeper" --quiet --from-start \
    --now $(($(date +%s) - 31 * 86400)) --pushes "$state/apns/pushes.log" --expect-pushes 1 \
    --max-seconds 120 >"$state/sleeper.json" 2>"$state/sleeper.log" &
sleeper_pid=$!

echo "== queueing DeviceInformation for every device but the sleeper"
sleeper_udid=$("$sim" list --dir "$state/sleeper" | cut -f2 | head -1)
udids=$("$vouchctl" --json devices | /usr/bin/python3 -c 'import json, sys
print(",".join(d["udid"] for d in json.load(sys.stdin) if d["udid"] != sys.argv[1]))' \
    "$sleeper_udid")
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
for p in serve liar replay sleeper; do
    pid_var=${p}_pid
    wait "${!pid_var}" || { echo "vouch-sim serve ($p) failed:"; tail -20 "$state/$p.log"; exit 1; }
    printf -v "$pid_var" ''
done

# The honest fleet's first device is erased and enrolls again: same UDID, a new identity
# certificate. Nothing of its first enrollment counts for the second: it attests anew.
echo "== one device is erased and enrolls again with a new identity certificate"
"$sim" enroll --url "$url" --dir "$state/wiped" --prefix sim --devices 1 "${sim_identity[@]}" \
    --topic "$topic" --quiet >/dev/null
"$sim" serve --url "$url" --dir "$state/wiped" --quiet --from-start \
    --pushes "$state/apns/pushes.log" --expect-pushes 1 --max-seconds 60 \
    >"$state/wiped.json" 2>"$state/wiped.log" &
wiped_pid=$!
wait "$wiped_pid" || { echo "vouch-sim serve (wiped) failed:"; tail -20 "$state/wiped.log"; exit 1; }
wiped_pid=

echo
echo "== what vouchd knows (vouchctl devices)"
"$vouchctl" devices
echo
enrolled=$("$vouchctl" --json devices | /usr/bin/python3 -c 'import json,sys; print(sum(1 for d in json.load(sys.stdin) if d["enrolled"]))')
echo "$enrolled of $total devices enrolled; all but the sleeper answered DeviceInformation (vouchctl commands UDID shows it)."
"$vouchctl" --json devices | /usr/bin/python3 -c '
import collections, json, sys
counts = collections.Counter(
    d["attestation"]["status"] + (" (" + d["attestation"]["reason"] + ")"
                                  if d["attestation"]["reason"] else "")
    for d in json.load(sys.stdin))
print("attestation verdicts: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
print("  unsupported: models too old to attest answered without it")
print("  failed (udid_mismatch): the liar answered with another device\x27s attestation")
print("  failed (nonce_mismatch): the replayer sent one made for a nonce vouchd never sent")
print("  expired: the sleeper attested with an attestation Apple made 31 days ago, then slept")
print("  generation 2: the first iPhone was erased and enrolled again with a new certificate;")
print("    nothing of its first enrollment counted: it attested anew")'
if [ "$identity" = acme ]; then
    echo
    echo "== identities (each device's identity.kind; vouchctl certs lists what the ACME server issued)"
    "$vouchctl" --json devices >"$state/devices.json"
    curl -sf -H "Authorization: Bearer $token" "$url/metrics" >"$state/metrics.txt"
    wiped_udid=$("$sim" list --dir "$state/wiped" | cut -f2 | head -1)
    /usr/bin/python3 - "$state/devices.json" "$state/metrics.txt" "$state/enroll.json" \
        "$("$vouchctl" --json certs | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" \
        <<'PY' || exit 1
import collections, json, re, sys
devices = json.load(open(sys.argv[1]))
kinds = collections.Counter((d.get("identity") or {}).get("kind") or "none" for d in devices)
notes = {"acme-attested": "from vouchd's ACME server, for a P-384 key Apple attested",
         "scep": "models too old to attest: a SCEP-style identity (the simulator's CA)"}
for kind, n in sorted(kinds.items()):
    print(f"  {n:3} {kind}: {notes.get(kind, '')}")
print(f"  {sys.argv[4]:>3} certificates issued over ACME: one per attested device, two for the "
      "erased one")
refusals = {m.group(1): int(m.group(2)) for m in re.finditer(
    r'^vouch_acme_refusals_total\{reason="([^"]*)"\} (\d+)$', open(sys.argv[2]).read(), re.M)}
print()
print("== refused by the ACME server (vouch_acme_refusals_total in /metrics; identity.refused events)")
notes = {"client_identifier_used": "a ClientIdentifier another device had used (a stolen "
                                   "profile)",
         "csr_key_mismatch": "a CSR for another key than the one Apple attested"}
for reason, n in sorted(refusals.items()):
    print(f"  {n:3} {reason}: {notes.get(reason, '')}")
sim = json.load(open(sys.argv[3]))["acme"]
print(f"  vouch-sim: {sum(sim['refused'].values())} of its 2 misbehaving devices refused, "
      f"{sim['not_refused']} let through")
if (refusals.get("client_identifier_used") != 1 or refusals.get("csr_key_mismatch") != 1
        or sim["not_refused"] or not kinds.get("acme-attested")):
    sys.exit("quickstart: expected acme-attested identities and exactly these two refusals")
PY
    echo
    echo "== the erased device's identities (vouchctl certs $wiped_udid): BOUND is the one in use"
    "$vouchctl" certs "$wiped_udid"
fi
sleep 1 # the last events are being delivered
echo
echo "== web-hook events received (each HMAC checked; log: $state/webhooks.log)"
/usr/bin/python3 - "$state/webhooks.log" <<'PY'
import collections, sys
lines = open(sys.argv[1]).read().splitlines()
topics = collections.Counter(l.split()[1] for l in lines if not l.startswith(("BAD", "not")))
print("  " + ", ".join(f"{n} {t}" for t, n in sorted(topics.items())))
for l in lines:
    if (" attestation.failed " in l or " attestation.expired " in l
            or " device.reenrolled " in l or l.startswith(("BAD", "not"))):
        print("  " + l)
PY

[ "$enrolled" -eq "$total" ] || { echo "quickstart: expected $total enrolled devices" >&2; exit 1; }

# The dashboard reads the admin API with a token pasted once; a read token can look, not act.
read_token=$("$vouchctl" tokens create "dashboard-$(date +%s)" --scope read 2>/dev/null) ||
    { echo "quickstart: vouchctl tokens create --scope read failed" >&2; exit 1; }
print_dashboard() {
    echo
    echo "== the dashboard: open it and paste the read token (it may look; re-attesting needs"
    echo "   the admin token)"
    echo "  $url/ui/"
    echo "  read token: $read_token"
}
if $once; then
    echo
    echo "With --once everything stops now. Run deploy/quickstart.sh without it to keep vouchd"
    echo "running and try vouchctl and the dashboard against it (each run starts the"
    echo "demonstration anew)."
    print_dashboard
    exit 0
fi
echo
echo "vouchd is running. Point vouchctl at it (in another terminal); Ctrl-C stops it and PostgreSQL:"
echo "  export VOUCH_URL=$url VOUCH_ADMIN_TOKEN=$token"
echo "  $vouchctl devices"
echo "  $vouchctl device ${udid_list[0]}"
echo "  $vouchctl commands ${udid_list[0]}"
echo "  $vouchctl attest ${udid_list[0]}     # ask for a new attestation now (the scheduler"
echo "                                        # also asks on OS changes and at random)"
echo "  $vouchctl events                      # the web-hook outbox"
[ "$identity" = acme ] &&
    echo "  $vouchctl certs                       # the identities the ACME server issued"
print_dashboard
wait "$vouchd_pid"
