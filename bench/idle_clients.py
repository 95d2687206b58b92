#!/usr/bin/env python3
"""Memory per idle keep-alive connection, for scripts/bench.sh --idle N.

    bench/idle_clients.py PORT N PID...

Opens N connections to 127.0.0.1:PORT, sends one GET /legacy/page/<i> on each
and reads its answer (status 200 and a Content-Length body expected), keeps
them all open and quiet for 2 s, closes them, waits 5 s. Prints one line:

    IDLE n=N failed=F before_kb=B held_kb=H after_kb=A

with the resident set (VmRSS) summed over the PIDs before the first
connection, while all are held, and 5 s after the last one closed.
"""
import socket
import sys
import time


def rss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def answer_ok(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        got = s.recv(65536)
        if not got:
            return False
        buf += got
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return False
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        return False
    while len(body) < length:
        got = s.recv(65536)
        if not got:
            return False
        body += got
    return True


def main():
    port, n, pids = int(sys.argv[1]), int(sys.argv[2]), [int(p) for p in sys.argv[3:]]
    before = rss_kb(pids)
    socks, failed = [], 0
    # In batches of 200: the requests of a batch are in flight together.
    for start in range(0, n, 200):
        batch = []
        for i in range(start, min(n, start + 200)):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=30)
                s.sendall(f"GET /legacy/page/{i} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                batch.append(s)
            except OSError:
                failed += 1
        for s in batch:
            try:
                ok = answer_ok(s)
            except OSError:
                ok = False
            if ok:
                socks.append(s)
            else:
                failed += 1
                s.close()
    time.sleep(2)
    held = rss_kb(pids)
    for s in socks:
        s.close()
    time.sleep(5)
    after = rss_kb(pids)
    print(f"IDLE n={n} failed={failed} before_kb={before} held_kb={held} after_kb={after}")


if __name__ == "__main__":
    main()
