#!/usr/bin/env python3
"""Checks that the rooms of src/ link only downward.

    scripts/check_rooms.py [--root DIR]   # DIR: the repository (default: this one)
    scripts/check_rooms.py --selftest     # shows that it fails on a cycle and on a stray include

A room is a folder of src/, built as one library by strangler_room() in
src/CMakeLists.txt, which names the rooms it links (ROOMS ...). This fails
(exit 1, one line per fault) when:
  - a file of room A includes "B/..." and A does not name B in its ROOMS;
  - the ROOMS links form a cycle;
  - a source file sits in src/ outside a room (main.cc alone may);
  - a room folder has no strangler_room() line, or a line names no folder.
Prints the layering, lowest room first, when all holds.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOM_LINE = re.compile(r"^strangler_room\((\w+)(.*)\)\s*$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"')


def declared_rooms(cmake_file):
    rooms = {}
    with open(cmake_file) as f:
        for line in f:
            m = ROOM_LINE.match(line.strip())
            if not m:
                continue
            words = m.group(2).split()
            deps, section = [], None
            for w in words:
                if w in ("ROOMS", "LIBS", "EXTRA"):
                    section = w
                elif section == "ROOMS":
                    deps.append(w)
            rooms[m.group(1)] = deps
    return rooms


def find_cycle(rooms):
    state = {}  # room -> 1 visiting, 2 done

    def visit(room, path):
        state[room] = 1
        for dep in rooms.get(room, []):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep] if dep in path else path + [dep]
            if state.get(dep) is None:
                found = visit(dep, path + [dep])
                if found:
                    return found
        state[room] = 2
        return None

    for room in rooms:
        if state.get(room) is None:
            found = visit(room, [room])
            if found:
                return found
    return None


def layering(rooms):
    order, placed = [], set()
    while len(placed) < len(rooms):
        ready = sorted(r for r in rooms if r not in placed and all(d in placed for d in rooms[r]))
        if not ready:
            break
        order.append(ready)
        placed.update(ready)
    return order


def check(root):
    src = os.path.join(root, "src")
    faults = []
    rooms = declared_rooms(os.path.join(src, "CMakeLists.txt"))
    folders = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))
    for d in folders:
        if d not in rooms and d != "demo":  # demo/ is its own program, no library
            faults.append(f"src/{d}/ has no strangler_room({d} ...) line in src/CMakeLists.txt")
    for r, deps in rooms.items():
        if r not in folders:
            faults.append(f"strangler_room({r}) names no folder src/{r}/")
        for d in deps:
            if d not in rooms:
                faults.append(f"room {r} links {d}, which is no room")
    for name in sorted(os.listdir(src)):
        if name.endswith((".cc", ".h")) and name != "main.cc":
            faults.append(f"src/{name} is in no room: move it into a folder of src/")
    for d in folders:
        for name in sorted(os.listdir(os.path.join(src, d))):
            if not name.endswith((".cc", ".h")):
                continue
            path = os.path.join(src, d, name)
            with open(path, errors="replace") as f:
                for n, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    to = m.group(1)
                    if to == d or to not in folders:
                        continue
                    if to not in rooms.get(d, []):
                        faults.append(f"src/{d}/{name}:{n} includes {to}/, but room {d} does not "
                                      f"link {to} (src/CMakeLists.txt): move the code, or the "
                                      f"value it needs, to a lower room")
    cycle = find_cycle(rooms)
    if cycle:
        faults.append("the rooms link in a cycle: " + " -> ".join(cycle))
    return faults, rooms


def selftest():
    def tree(cmake, files):
        root = tempfile.mkdtemp(prefix="check-rooms-")
        os.makedirs(os.path.join(root, "src"))
        with open(os.path.join(root, "src", "CMakeLists.txt"), "w") as f:
            f.write(cmake)
        for path, text in files.items():
            full = os.path.join(root, "src", path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(text)
        return root

    good = "strangler_room(a)\nstrangler_room(b ROOMS a LIBS x)\n"
    cases = [
        ("a clean tree", good, {"a/a.h": "", "b/b.cc": '#include "a/a.h"\n'}, False),
        ("an include the links do not allow", good,
         {"a/a.h": '#include "b/b.h"\n', "b/b.h": ""}, True),
        ("a cycle", "strangler_room(a ROOMS b)\nstrangler_room(b ROOMS a)\n",
         {"a/a.h": "", "b/b.h": ""}, True),
        ("a file outside a room", good, {"a/a.h": "", "b/b.h": "", "loose.cc": ""}, True),
    ]
    ok = True
    for what, cmake, files, must_fail in cases:
        root = tree(cmake, files)
        try:
            run = subprocess.run([sys.executable, __file__, "--root", root], capture_output=True,
                                 text=True)
        finally:
            shutil.rmtree(root)
        failed = run.returncode != 0
        verdict = "ok" if failed == must_fail else "WRONG"
        ok &= failed == must_fail
        print(f"selftest: {what}: {'refused' if failed else 'accepted'} ({verdict})")
    return 0 if ok else 1


def main():
    args = sys.argv[1:]
    if args == ["--selftest"]:
        return selftest()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    if len(args) == 2 and args[0] == "--root":
        root = args[1]
    elif args:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    faults, rooms = check(root)
    for f in faults:
        print("check_rooms: " + f)
    if faults:
        return 1
    print("rooms, lowest first: " + " < ".join(",".join(step) for step in layering(rooms)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
