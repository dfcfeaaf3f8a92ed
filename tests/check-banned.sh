#!/usr/bin/env bash
# House rule (docs/hacking.md, after curl): no unbounded or error-blind C library calls.
# Prints each use and exits 1 if there is any.
cd "$(dirname "$0")/.." || exit 2
if grep -rnE '\b(sprintf|vsprintf|strcpy|strcat|strncat|atoi|atol|atoll|gets|strtok)\s*\(' \
    --include='*.c' --include='*.h' lib server apns db profiles cli tests bench; then
    echo "banned calls found: use snprintf, memcpy with a length, strtol with checks" >&2
    exit 1
fi
exit 0
