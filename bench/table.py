#!/usr/bin/python3
"""The one summary table of a bench/run.sh run, from its JSON rows (bench/benchlib.py's shape).

Usage: table.py RESULTS.json [--markdown]   (one JSON object per line; lines that are not are
skipped). Prints figure, value, reference, ratio, target, and whether the target is met.
"""
import json
import re
import sys

from benchlib import fmt_value


def met(rec):
    """'yes' / 'NO' / '' for a row's target: '>=R' on the ratio, '<V unit' or '<=V unit' on
    the value."""
    target = rec.get("target")
    if not target:
        return ""
    m = re.fullmatch(r">=([\d.]+)", target)
    if m:
        return "yes" if rec.get("ratio") is not None and rec["ratio"] >= float(m.group(1)) \
            else "NO"
    m = re.fullmatch(r"<(=?)([\d.]+).*", target)
    if m:
        limit = float(m.group(2))
        return "yes" if rec["value"] < limit or (m.group(1) and rec["value"] == limit) \
            else "NO"
    return ""


def main():
    rows = []
    with open(sys.argv[1]) as f:
        for line in f:
            if line.startswith("{"):
                rec = json.loads(line)
                if "figure" in rec:
                    rows.append(rec)
    md = "--markdown" in sys.argv[2:]
    head = ("figure", "value", "reference", "ratio", "target", "met")
    cells = []
    for r in rows:
        ref = fmt_value(r["reference"], r["unit"]) if r.get("reference") is not None else ""
        ratio = f"{r['ratio']:.2f}" if r.get("ratio") is not None else ""
        cells.append((r["figure"], fmt_value(r["value"], r["unit"]), ref, ratio,
                      r.get("target") or "", met(r)))
    if md:
        print("| " + " | ".join(head) + " |")
        print("|---|---:|---:|---:|---|---|")
        for c in cells:
            print("| " + " | ".join(c) + " |")
    else:
        print(f"{head[0]:<60} {head[1]:>14} {head[2]:>14} {head[3]:>6} {head[4]:>8} {head[5]:>4}")
        for c in cells:
            print(f"{c[0]:<60} {c[1]:>14} {c[2]:>14} {c[3]:>6} {c[4]:>8} {c[5]:>4}")


if __name__ == "__main__":
    main()
