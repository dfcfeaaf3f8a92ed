#!/usr/bin/env python3
"""House rule (docs/hacking.md): the repository stands on its own. A user's clone has nothing
beside it, so no tracked file may read or name a path above the repository root: no relative
path that climbs out of it (`../` chains, or `".."` parts joined in Python, counted from the
file's own folder), no path into the developers' own machines. Prints each finding as
FILE:LINE: WHAT and exits 1 if there is any.

  tests/check-self-contained.py             check the tracked files of this repository
  tests/check-self-contained.py --self-test check that the rule finds what it must, in a scratch
                                            repository
"""
import os
import re
import subprocess
import sys
import tempfile

# A run of "../" (or "..\\"), and a run of ".." parts in one os.path.join(...).
UP_CHAIN = re.compile(r"(?<![\w.])((?:\.\.[/\\])+)")
JOIN_CHAIN = re.compile(r"""((?:["']\.\.["']\s*,\s*)+)""")
# The folder the developers keep beside the repository, by name, however it is reached.
SIBLING = re.compile(r"\.\.[/\\]+shared\b|[\"']shared[\"']\s*,\s*[\"']testdata[\"']")
# Absolute paths into a developer's machine.
MACHINE = re.compile(r"(?<![\w.~-])/work/(?:main|shared)\b")


def tracked_files(root):
    """The tracked files; outside a git work tree (an unpacked release), every file but the
    build and run folders."""
    git = subprocess.run(["git", "-C", root, "ls-files", "-z"], capture_output=True)
    if git.returncode == 0:
        return [p for p in git.stdout.decode().split("\0") if p]
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [d for d in subfolders
                         if not d.startswith((".git", "build", ".vouch", ".run", "__pycache__"))]
        files += [os.path.relpath(os.path.join(folder, n), root) for n in names]
    return files


def findings_in(path, text):
    depth = path.count("/")  # folders between the repository root and this file
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if SIBLING.search(line):
            found.append((lineno, "names the folder beside the repository"))
            continue
        if MACHINE.search(line):
            found.append((lineno, "names a path on a developer's machine"))
            continue
        ups = max([m.group(1).count("..") for m in UP_CHAIN.finditer(line)] +
                  [m.group(1).count("..") for m in JOIN_CHAIN.finditer(line)] + [0])
        if ups > depth:
            found.append((lineno, f"climbs {ups} folders from a file {depth} deep: "
                                  "outside the repository"))
    return found


def findings(root):
    """(path, line, what) of every tracked text file under root."""
    for path in tracked_files(root):
        try:
            with open(os.path.join(root, path), "rb") as f:
                data = f.read()
        except (FileNotFoundError, IsADirectoryError):
            continue  # deleted in the work tree, or a submodule
        if b"\0" in data[:8192]:
            continue  # binary
        for lineno, what in findings_in(path, data.decode("utf-8", "replace")):
            yield path, lineno, what


def check(root):
    bad = 0
    for path, lineno, what in findings(root):
        print(f"{path}:{lineno}: {what}")
        bad += 1
    if bad:
        print(f"check-self-contained: {bad} reference(s) outside the repository: copy what is "
              "needed into tests/testdata/ or docs/", file=sys.stderr)
    return bad == 0


def self_test():
    """Each offending line must be found, each innocent one must pass."""
    # Spelt in pieces, so that this file does not trip its own rule.
    up, dots, sib, home = "." + "./", '"' + "." * 2 + '", ', "sha" + "red", "/wo" + "rk/"
    must_fail = {
        "README.md": f"see {up}{sib}/spec/attestation.md\n",
        "tests/unit/t.c": f'#define D "{up}{sib}/testdata/apple/"\n',
        "tests/lib/x.h": f" * shaped like {up * 3}elsewhere/spec.md\n",
        "tests/integration/h.py": f'p = os.path.join(HERE, {dots * 3}"elsewhere")\n',
        "tests/integration/i.py": f'p = os.path.join(HERE, "{sib}", "testdata")\n',
        "docs/a.md": f"cp {home}{sib}/testdata/x .\n",
    }
    must_pass = {
        "tests/lib/y.h": f'#include "{up * 2}server/attestation/attest.h"\n',
        "tests/integration/j.py": f'REPO = os.path.join(HERE, {dots * 2}"x")\n',
        "bench/k.md": "shared_buffers = 4GB; a shared connection\n",
        "server/z.c": f"/* {up} in a comment alone, and x/{up}y */\n",
    }
    with tempfile.TemporaryDirectory() as root:
        subprocess.run(["git", "init", "-q", root], check=True)
        for path, text in {**must_fail, **must_pass}.items():
            os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(root, path), "w") as f:
                f.write(text)
        subprocess.run(["git", "-C", root, "add", "-A"], check=True)
        found = {path for path, _line, _what in findings(root)}
    for path in sorted(set(must_fail) - found):
        print(f"self-test: {path}: {must_fail[path].strip()!r} was not found")
    for path in sorted(found - set(must_fail)):
        print(f"self-test: {path}: {must_pass[path].strip()!r} was found, wrongly")
    return found == set(must_fail)


def main():
    if sys.argv[1:] == ["--self-test"]:
        return 0 if self_test() else 1
    if sys.argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    return 0 if check(root) else 1


if __name__ == "__main__":
    sys.exit(main())
