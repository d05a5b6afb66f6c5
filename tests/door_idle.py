#!/usr/bin/env python3
"""door_idle.py PORT N HEADER_TIMEOUT - for tests/test_door.sh.

Opens N connections to hearthd on 127.0.0.1:PORT that each send part of a
request's headers and then nothing. Checks that /health still answers at
once (and counts them all open), that the server closes every one of them
once HEADER_TIMEOUT seconds have passed since it was opened (and none much
before), and that /health then counts only itself. Exit 0 when all holds,
1 otherwise, 77 when this process may not open N sockets.
"""
import json
import resource
import selectors
import socket
import sys
import time

PARTIAL = b"GET /health HTTP/1.1\r\nHost: local"


def health(port, timeout):
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(body), time.monotonic() - t0


def main():
    port, n, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = n + 64
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            print(f"SKIP: this process may open {hard} files, {need} needed")
            return 77
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

    opened = {}
    sel = selectors.DefaultSelector()
    t_first = time.monotonic()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(PARTIAL)
        s.setblocking(False)
        opened[s] = time.monotonic()
        sel.register(s, selectors.EVENT_READ)
    t_all = time.monotonic()
    print(f"opened {n} idle connections in {t_all - t_first:.2f} s")

    ok = True
    status, h, took = health(port, 5)
    print(f"/health: {status} in {took * 1000:.0f} ms, {h['connections']['open']} open")
    if status != 200 or took > 2:
        print("FAIL: /health was not answered at once")
        ok = False
    # all accepted (only while none can have reached its deadline yet)
    if time.monotonic() - t_first < timeout - 0.5 and h["connections"]["open"] != n + 1:
        print(f"FAIL: {n + 1} connections expected open")
        ok = False

    closed_after = []
    early = 0
    deadline = t_first + timeout + 15
    while opened and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if data:
                print(f"FAIL: an idle connection got an answer: {data[:60]!r}")
                ok = False
            age = time.monotonic() - opened.pop(s)
            closed_after.append(age)
            if age < timeout - 0.25:
                early += 1
            sel.unregister(s)
            s.close()
    if opened:
        print(f"FAIL: {len(opened)} of {n} idle connections still open "
              f"{timeout + 15:.0f} s after the first was opened")
        ok = False
    if closed_after:
        print(f"closed {len(closed_after)} after {min(closed_after):.2f} to "
              f"{max(closed_after):.2f} s (header_timeout {timeout:g} s)")
    if early:
        print(f"FAIL: {early} closed before header_timeout")
        ok = False

    status, h, _ = health(port, 5)
    print(f"/health after: {status}, {h['connections']['open']} open")
    if status != 200 or h["connections"]["open"] != 1:
        print("FAIL: connections left open")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
