#!/usr/bin/env bash
# h2load.sh: how many MDM pushes per second h2load gets answered by apns-standin on this machine,
# the ceiling a push client (vouchd) can be compared with. Makes certificates in a temporary
# directory, starts the stand-in with a --listen-noauth front (h2load cannot present a client
# certificate), runs h2load with a valid push, prints h2load's summary and one last line
#   h2load: R req/s (n=N c=C m=M, all 200: yes|no)
# and stops the stand-in.
#
# Usage: tests/apns/h2load.sh [-n REQUESTS] [-c CONNECTIONS] [-m STREAMS] [APNS_STANDIN]
#   defaults: -n 100000 -c 4 -m 100, APNS_STANDIN = build/tests/apns/apns-standin
# Needs h2load (Debian package nghttp2-client) and the openssl CLI.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
n=100000 c=4 m=100
while getopts n:c:m: opt; do
    case $opt in
    n) n=$OPTARG ;;
    c) c=$OPTARG ;;
    m) m=$OPTARG ;;
    *) sed -n '9,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
standin=${1:-$here/../../build/tests/apns/apns-standin}
command -v h2load >/dev/null || { echo "h2load.sh: h2load missing (apt-get install nghttp2-client)" >&2; exit 1; }
[ -x "$standin" ] || { echo "h2load.sh: $standin: not built" >&2; exit 1; }

work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$here/make-certs.sh" "$work" >/dev/null
"$standin" --listen 127.0.0.1:0 --listen-noauth 127.0.0.1:0 --cert "$work/server.pem" \
    --key "$work/server.key" --client-ca "$work/push-ca.pem" --max-records 1000 \
    >"$work/ready" 2>"$work/stderr" &
pid=$!
for _ in $(seq 100); do
    grep -q '^apns-standin ready' "$work/ready" 2>/dev/null && break
    sleep 0.05
done
noauth=$(sed -n 's/.* noauth=\([^ ]*\).*/\1/p' "$work/ready")
[ -n "$noauth" ] || { cat "$work/stderr" >&2; exit 1; }

printf '{"mdm":"h2load-push-magic"}' >"$work/body.json"
token=$(printf 'ab%.0s' $(seq 32))
h2load -n "$n" -c "$c" -m "$m" -d "$work/body.json" \
    -H "apns-topic: $(cat "$work/topic")" -H 'apns-push-type: mdm' \
    -H "apns-expiration: $(($(date +%s) + 7 * 86400))" -H 'apns-priority: 10' \
    "https://$noauth/3/device/$token" | grep -v '^progress' | tee "$work/out"

rate=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$work/out")
all200=no
grep -q "^status codes: $n 2xx" "$work/out" && all200=yes
echo "h2load: $rate req/s (n=$n c=$c m=$m, all 200: $all200)"
[ "$all200" = yes ]
