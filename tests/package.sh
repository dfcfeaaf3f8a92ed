#!/usr/bin/env bash
# The Debian package (debian/), built and installed on this machine as an operator would:
#   builds vouch_*.deb with dpkg-buildpackage -b -us -uc from a copy of the work tree (tracked and
#   new files, not ignored ones) in tests/.run/package/, so the checkout stays clean; installs it
#   with apt-get; checks what it installed (vouchd --version, vouchctl --help, the vouch user,
#   the conffile, the manual pages, systemd-analyze verify on the installed unit); runs lintian
#   (no error; warnings are printed, not counted); purges it again (the configuration goes, the
#   operator's keys in /etc/vouch and the vouch user stay: Debian policy).
# Each check is one test; ends with one line "package: N passed, N failed" (tests/run.sh adds it
# to its total). Needs root (apt-get install) and the packages tests/run.sh installs. It replaces
# an installed vouch package and purges it at the end: run it on a test machine.
# Usage: tests/package.sh
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$repo/tests/.run/package
passed=0
failed=0

# check NAME COMMAND...: one test, passed when COMMAND exits 0 (its output shown when not).
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        echo "PASS  $name"
        passed=$((passed + 1))
    else
        echo "FAIL  $name"
        printf '%s\n' "$out" | tail -30 | sed 's/^/      /'
        failed=$((failed + 1))
    fi
}

finish() {
    echo "package: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

# A copy of the work tree: dpkg-buildpackage writes beside its source folder and into it.
copy_tree() {
    rm -rf "$work" && mkdir -p "$work/src" &&
        git -C "$repo" ls-files -z --cached --others --exclude-standard |
        (cd "$repo" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
            tar -C "$repo" --null -T - -cf - | tar -C "$work/src" -xf -
}

build_package() {
    (cd "$work/src" && dpkg-buildpackage -b -us -uc -j2 >"$work/build.log" 2>&1) ||
        { tail -40 "$work/build.log"; return 1; }
    ls "$work"/vouch_*.deb >/dev/null
}

install_package() {
    [ "$(id -u)" -eq 0 ] || { echo "apt-get install needs root"; return 1; }
    local deb
    deb=$(ls "$work"/vouch_*_*.deb | grep -v dbgsym)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades "$deb"
}

version_matches() {
    local want got
    want=$(dpkg-parsechangelog -l "$repo/debian/changelog" -S Version)
    got=$(/usr/sbin/vouchd --version) || return 1
    echo "vouchd --version: $got; debian/changelog: $want"
    [ "$got" = "vouchd $want" ]
}

vouchctl_help() {
    /usr/bin/vouchctl --help | grep -q '^Usage: vouchctl '
}

# The vouch user, who alone reads the configuration and the folder of keys.
user_and_modes() {
    local home shell
    id vouch && home=$(getent passwd vouch | cut -d: -f6) &&
        shell=$(getent passwd vouch | cut -d: -f7) &&
        [ "$home" = /nonexistent ] && [ "$shell" = /usr/sbin/nologin ] || return 1
    [ "$(stat -c '%U:%G %a' /etc/vouch)" = "vouch:vouch 750" ] &&
        [ "$(stat -c '%U:%G %a' /etc/vouch/vouch.conf)" = "vouch:vouch 600" ] ||
        { stat -c '%n %U:%G %a' /etc/vouch /etc/vouch/vouch.conf; return 1; }
}

installed_files() {
    dpkg-query -W -f='${Conffiles}\n' vouch | grep -q '^ /etc/vouch/vouch.conf ' &&
        grep -q '^database_url = ' /etc/vouch/vouch.conf &&
        grep -q 'CREATE DATABASE vouch' /usr/share/vouch/postgres-setup.sql &&
        man -w vouchd.8 | grep -q '^/usr/share/man/man8/vouchd.8.gz$' &&
        man -w vouchctl.1 | grep -q '^/usr/share/man/man1/vouchctl.1.gz$' &&
        zcat /usr/share/man/man1/vouchctl.1.gz | grep -q '^\.TH VOUCHCTL "1"' &&
        # Installed, not enabled: vouchd needs its configuration and database first.
        [ "$(systemctl is-enabled vouchd.service 2>/dev/null)" = disabled ]
}

# No systemd runs here to watch it: what the maintainer scripts will do with the unit.
unit_life_cycle() {
    grep -q "deb-systemd-invoke try-restart 'vouchd.service'" /var/lib/dpkg/info/vouch.postinst &&
        ! grep -qE 'deb-systemd-invoke (start|restart) ' /var/lib/dpkg/info/vouch.postinst &&
        grep -q 'deb-systemd-invoke stop vouchd.service' /var/lib/dpkg/info/vouch.prerm
}

verify_unit() {
    systemd-analyze verify /lib/systemd/system/vouchd.service &&
        grep -q '^ExecStart=/usr/sbin/vouchd --config /etc/vouch/vouch.conf$' \
            /lib/systemd/system/vouchd.service
}

run_lintian() {
    (cd "$work" && lintian --fail-on error --display-level '>=warning' vouch_*_*.changes) \
        >"$work/lintian.txt" 2>&1
}

# Purge: the conffile goes, what the operator put in /etc/vouch stays, and so does the user.
purge_keeps_data() {
    local key=/etc/vouch/push.key
    echo "an operator's key" >"$key" &&
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -q vouch &&
        [ ! -e /etc/vouch/vouch.conf ] && [ -f "$key" ] && id vouch &&
        ! dpkg-query -W -f='${Status}' vouch 2>/dev/null | grep -q 'ok installed' &&
        rm -f "$key" && rmdir /etc/vouch
}

# The copy goes when the script ends (the house checks read tests/, and it holds C files); the
# packages, build.log and lintian.txt stay in tests/.run/package/.
trap 'rm -rf "$work/src"' EXIT
start=$(date +%s)
check "package: copy of the work tree" copy_tree || finish
check "package: dpkg-buildpackage -b -us -uc" build_package
[ "$failed" -eq 0 ] || finish
echo "      built $(cd "$work" && ls vouch_*.deb | tr '\n' ' ')in $(($(date +%s) - start)) s"
check "package: lintian, no error" run_lintian
grep -E '^[WE]: ' "$work/lintian.txt" | sed 's/^/      lintian: /'
check "package: apt-get install ./vouch_*.deb" install_package
if [ "$failed" -eq 0 ]; then
    check "package: vouchd --version" version_matches
    check "package: vouchctl --help" vouchctl_help
    check "package: the vouch user, /etc/vouch modes" user_and_modes
    check "package: conffile, postgres-setup.sql, man pages, unit not enabled" installed_files
    check "package: systemd-analyze verify vouchd.service" verify_unit
    check "package: upgrade restarts vouchd if it runs, removal stops it" unit_life_cycle
    check "package: purge keeps the operator's files and the user" purge_keeps_data
fi
echo "      time: $(($(date +%s) - start)) s"
finish
