#!/usr/bin/env python3
"""Prints line and branch coverage per room of src/ from a gcovr JSON summary.

    scripts/coverage_rooms.py build-cov/coverage.json

A room is a folder under src/ (src/proxy/...); src/main.cc counts with cli.
The request path (proxy: sessions, upstream pools, fibers; http: the message
parser, header fields, the response relay) is listed first: it should be the
best covered.
"""
import json
import sys

ORDER = ["proxy", "http", "rules", "safety", "decisions", "store", "audit", "control", "cli",
         "base", "demo"]


def room_of(path):
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "src":
        return parts[1]
    return "cli"  # src/main.cc


def pct(covered, total):
    return f"{100.0 * covered / total:5.1f}%" if total else "    -"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: coverage_rooms.py COVERAGE.json")
    with open(sys.argv[1]) as f:
        data = json.load(f)
    rooms = {}
    for entry in data["files"]:
        r = rooms.setdefault(room_of(entry["filename"]), [0, 0, 0, 0, 0])
        r[0] += entry["line_covered"]
        r[1] += entry["line_total"]
        r[2] += entry["branch_covered"]
        r[3] += entry["branch_total"]
        r[4] += 1
    names = [n for n in ORDER if n in rooms] + sorted(n for n in rooms if n not in ORDER)
    print("room        files   lines covered      branches covered")
    print("----------  -----   ----------------   ----------------")
    tl = [0, 0, 0, 0]
    for n in names:
        lc, lt, bc, bt, files = rooms[n]
        print(f"{n:<10}  {files:5}   {pct(lc, lt)} {lc:>5}/{lt:<5}   {pct(bc, bt)} {bc:>5}/{bt:<5}")
        tl = [tl[0] + lc, tl[1] + lt, tl[2] + bc, tl[3] + bt]
    print(f"{'all':<10}  {sum(r[4] for r in rooms.values()):5}   {pct(tl[0], tl[1])} "
          f"{tl[0]:>5}/{tl[1]:<5}   {pct(tl[2], tl[3])} {tl[2]:>5}/{tl[3]:<5}")
    print("(branches: gcovr --exclude-throw-branches --exclude-unreachable-branches)")


if __name__ == "__main__":
    main()
