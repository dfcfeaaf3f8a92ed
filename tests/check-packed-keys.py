#!/usr/bin/env python3
"""House rule: the keys vouchd packs a verdict's objects under are the database's.

vouchd writes the verdict's "properties" and "checked" objects, and beside them their packed
form, each value in its field's order (server/attestation/attest_json.c: property_fields,
checked_fields); the database stores the packed form and names the values from
vouch_properties_keys() and vouch_checked_keys() (db/functions/30_devices.sql). A key list that
drifted from the other would show values under the wrong keys. This compares them.

Usage: tests/check-packed-keys.py [--self-test]
Prints each difference and exits 1 if there is any.
"""
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
C_FILE = "server/attestation/attest_json.c"
SQL_FILE = "db/functions/30_devices.sql"


def c_keys(text, function):
    """The keys of f[0], f[1], ... in a C function's body, by index."""
    m = re.search(r"static void " + function + r"\([^)]*\)\s*\{(.*?)\n\}", text, re.S)
    if not m:
        return None
    keys = {}
    for index, key in re.findall(r'f\[(\d+)\]\s*=\s*[^;]*?"([a-z_]+)"', m.group(1), re.S):
        keys[int(index)] = key
    return [keys[i] for i in sorted(keys)] if sorted(keys) == list(range(len(keys))) else None


def sql_keys(text, function):
    m = re.search(r"FUNCTION " + function + r"\(\).*?ARRAY\[(.*?)\]", text, re.S)
    return re.findall(r"'([a-z_]+)'", m.group(1)) if m else None


def differences(c_text, sql_text):
    found = []
    for c_function, sql_function in (("property_fields", "vouch_properties_keys"),
                                     ("checked_fields", "vouch_checked_keys")):
        c, sql = c_keys(c_text, c_function), sql_keys(sql_text, sql_function)
        if c is None or sql is None:
            found.append(f"cannot read {c_function} ({C_FILE}) or {sql_function} ({SQL_FILE})")
        elif c != sql:
            found.append(f"{C_FILE} {c_function} packs {c}, {SQL_FILE} {sql_function} "
                         f"names {sql}")
    return found


def self_test():
    """The rule finds a swap and a missing key, and passes the files as they are."""
    c_text = open(os.path.join(ROOT, C_FILE)).read()
    sql_text = open(os.path.join(ROOT, SQL_FILE)).read()
    assert not differences(c_text, sql_text), differences(c_text, sql_text)
    swapped = sql_text.replace("'sepos_version', 'llb_version'", "'llb_version', 'sepos_version'")
    assert swapped != sql_text and differences(c_text, swapped)
    shorter = sql_text.replace("'require_fresh', ", "")
    assert shorter != sql_text and differences(c_text, shorter)
    return True


def main():
    if sys.argv[1:] == ["--self-test"]:
        return 0 if self_test() else 1
    found = differences(open(os.path.join(ROOT, C_FILE)).read(),
                        open(os.path.join(ROOT, SQL_FILE)).read())
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
