#!/usr/bin/env python3
"""House rule (docs/hacking.md): what the README and docs/ say can be checked, and holds.

  * every repository path they name in `code` (server/..., tests/..., deploy/..., docs/...)
    exists, and so does every relative Markdown link target;
  * every default they state for a configuration key equals the one `vouchd --help` prints:
    "`key` (default X)", "`key` (X ...)" with a number first, and tables with a "default"
    column.

Usage: tests/check-docs.py VOUCHD [FILE.md ...]
       (default: README.md, docs/, deploy/ and bench/ *.md, and every README.md under tests/)
Prints each finding as FILE:LINE: WHAT and exits 1 if there is any.
"""
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TOP_FOLDERS = ("server", "apns", "db", "profiles", "cli", "tests", "bench", "deploy", "docs",
               ".ci")
CODE_SPAN = re.compile(r"`([^`\s]+)`")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
# "`key` (default 4)", "`key` (7 days, Apple's limit)": a number first.
KEY_DEFAULT = re.compile(r"`([a-z][a-z0-9_]*)`\s*\((?:default\s+)?([0-9][^,;)]*)")
UNITS = {"s": "s", "sec": "s", "second": "s", "seconds": "s", "m": "m", "min": "m",
         "minute": "m", "minutes": "m", "h": "h", "hour": "h", "hours": "h", "d": "d",
         "day": "d", "days": "d"}


def normalise(value):
    """'7 days' -> '7d', '72 h' -> '72h', '1,000' -> '1000'; other text as it is, trimmed."""
    value = value.strip().strip("`").replace(",", "")
    m = re.fullmatch(r"([0-9]+)\s*([a-z]+)", value)
    if m and m.group(2) in UNITS:
        return m.group(1) + UNITS[m.group(2)]
    return value


def help_defaults(vouchd):
    """{key: default} from `vouchd --help`: a key line and its continuation lines."""
    text = subprocess.run([vouchd, "--help"], capture_output=True, text=True, check=True).stdout
    entries, key = {}, None
    for line in text.splitlines():
        m = re.match(r"^  ([a-z][a-z0-9_]*(?:, [a-z][a-z0-9_]*)*)\b(.*)$", line)
        if m:
            key = m.group(1)
            entries[key] = m.group(2)
        elif key and line.startswith("    "):
            entries[key] += " " + line.strip()
        else:
            key = None
    defaults = {}
    for keys, text in entries.items():
        m = re.search(r"\bdefault ([^;,)\s]+)", text)
        if m:
            for k in keys.split(", "):
                defaults[k] = normalise(m.group(1).rstrip(":"))  # "(default false: ...)"
    return defaults


def ignored_by_git(path):
    """A path the build or a run makes (tests/.run/...): .gitignore says so."""
    return subprocess.run(["git", "-C", ROOT, "check-ignore", "-q", path],
                          capture_output=True).returncode == 0


def repo_path_exists(path):
    path = path.rstrip(".,:;")
    if "<" in path or "$" in path or "N" == path.rsplit("/", 1)[-1]:
        return True  # a pattern for the reader, not a path
    if ignored_by_git(path):
        return True
    alternatives = [path]
    m = re.search(r"\{([^}]*)\}", path)
    if m:
        alternatives = [path[:m.start()] + alt + path[m.end():] for alt in m.group(1).split(",")]
    return all(glob.glob(os.path.join(ROOT, alt)) for alt in alternatives)


def check_file(md, defaults):
    found = []
    rel = os.path.relpath(md, ROOT)
    header_default_col = None
    with open(md) as f:
        lines = f.read().splitlines()
    for lineno, line in enumerate(lines, 1):
        for span in CODE_SPAN.findall(line):
            if span.split("/", 1)[0] in TOP_FOLDERS and "/" in span \
                    and not repo_path_exists(span):
                found.append((lineno, f"names {span}, which does not exist"))
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):
                continue  # a URL
            if not os.path.exists(os.path.join(os.path.dirname(md), target)):
                found.append((lineno, f"links to {target}, which does not exist"))
        for key, value in KEY_DEFAULT.findall(line):
            if key in defaults and normalise(value) != defaults[key]:
                found.append((lineno, f"says {key} defaults to {value.strip()}; "
                                      f"vouchd --help: {defaults[key]}"))
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if any(c.lower() == "default" for c in cells):
                header_default_col = [c.lower() for c in cells].index("default")
                continue
            m = re.fullmatch(r"`([a-z][a-z0-9_]*)`", cells[0]) if cells else None
            if header_default_col is not None and m and m.group(1) in defaults \
                    and header_default_col < len(cells):
                stated = normalise(cells[header_default_col])
                if re.match(r"[0-9a-z]", stated) and stated != defaults[m.group(1)]:
                    found.append((lineno, f"table says {m.group(1)} defaults to "
                                          f"{cells[header_default_col]}; vouchd --help: "
                                          f"{defaults[m.group(1)]}"))
        else:
            header_default_col = None
    return [(rel, lineno, what) for lineno, what in found]


def main():
    if not sys.argv[1:] or sys.argv[1] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    defaults = help_defaults(sys.argv[1])
    files = sys.argv[2:] or [os.path.join(ROOT, "README.md")] + sorted(
        glob.glob(os.path.join(ROOT, "docs", "*.md")) +
        glob.glob(os.path.join(ROOT, "deploy", "*.md")) +
        glob.glob(os.path.join(ROOT, "bench", "*.md")) +
        glob.glob(os.path.join(ROOT, "tests", "**", "README.md"), recursive=True))
    findings = [f for md in files for f in check_file(md, defaults)]
    for rel, lineno, what in findings:
        print(f"{rel}:{lineno}: {what}")
    if findings:
        print(f"check-docs: {len(findings)} statement(s) that do not hold", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
