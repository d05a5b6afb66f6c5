#!/usr/bin/env python3
"""door_conns.py - connections against hearthd on 127.0.0.1, for tests/test_door.sh.

door_conns.py idle PORT N HEADER_TIMEOUT [PID]
    Opens N connections that each send part of a request's headers and then
    nothing. Checks that /health still answers at once (and counts them all
    open), that the server closes every one of them once HEADER_TIMEOUT
    seconds have passed since it was opened (and none much before), and
    that /health then counts only itself. With PID (hearthd's, not under a
    sanitizer): its resident size comes back within 10% (and 1 MiB) of
    what it was before, within 5 s (what the connections took is given
    back once the server is quiet).

door_conns.py cut PORT N
    Opens N connections that each send, in one write, a POST's headers and
    part of the body they announce (by Content-Length or chunked), or the
    headers only, and at once shut down their side (half of them) or close.
    The end of stream comes with the last bytes, in the same read: checks
    that hearthd closes every one at once (within 3 s, without an answer)
    and that /health then counts no request and no connection but itself,
    long before idle_timeout.

door_conns.py limit PORT MAX
    Holds MAX - 1 idle connections (waiting until /health counts them and
    itself: MAX), opens one more, and checks that a request beyond MAX gets
    503 too_many_connections and is closed.

Exit 0 when all holds, 1 otherwise, 77 when this process or hearthd may not
open enough sockets.
"""
import json
import resource
import selectors
import socket
import sys
import time

PARTIAL = b"GET /health HTTP/1.1\r\nHost: local"


def get(port, path, timeout):
    """One request; (status, head, body, seconds). The server closes."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), head, body, time.monotonic() - t0


def health(port, timeout):
    status, _, body, took = get(port, b"/health", timeout)
    return status, json.loads(body), took


def partial(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(PARTIAL)
    return s


def limit(port, most):
    held = [partial(port) for _ in range(most - 1)]
    deadline = time.monotonic() + 5
    while health(port, 5)[1]["connections"]["open"] != most:  # and itself
        if time.monotonic() > deadline:
            print("FAIL: the idle connections were not accepted")
            return 1
    held.append(partial(port))
    status, head, body, _ = get(port, b"/health", 5)
    print(head.decode().splitlines()[0], "(then closed)")
    return 0 if status == 503 and b"too_many_connections" in body else 1


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("VmRSS:")).split()[1])


def idle(port, n, timeout, pid=None):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = n + 64
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            print(f"SKIP: this process may open {hard} files, {need} needed")
            return 77
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

    _, h, _ = health(port, 5)
    if h["connections"]["max"] < n + 1:
        print(f"SKIP: hearthd may keep {h['connections']['max']} connections (its open-file "
              f"limit), {n + 1} needed")
        return 77

    rss0 = rss_kib(pid) if pid else None
    opened = {}
    sel = selectors.DefaultSelector()
    t_first = time.monotonic()
    for _ in range(n):
        s = partial(port)
        s.setblocking(False)
        opened[s] = time.monotonic()
        sel.register(s, selectors.EVENT_READ)
    t_all = time.monotonic()
    print(f"opened {n} idle connections in {t_all - t_first:.2f} s")

    ok = True
    status, h, took = health(port, 5)
    print(f"/health: {status} in {took * 1000:.0f} ms, {h['connections']['open']} open")
    # answered within a deadline (the first accepts all the connections
    # queued before it: seconds under ThreadSanitizer), and while every
    # idle one is still open: it counts them all
    if status != 200 or took > 5:
        print("FAIL: /health was not answered within 5 s")
        ok = False
    if h["connections"]["open"] != n + 1:
        print(f"FAIL: {n + 1} connections expected open (header_timeout too short "
              "for this machine?)")
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
    if pid:
        bound, deadline = rss0 * 1.10 + 1024, time.monotonic() + 5
        while (rss := rss_kib(pid)) > bound and time.monotonic() < deadline:
            time.sleep(0.1)
        print(f"RSS {rss0} KiB before, {rss} KiB after")
        if rss > bound:
            print(f"FAIL: RSS not back within 10% (and 1 MiB) of {rss0} KiB within 5 s")
            ok = False
    return 0 if ok else 1


def cut(port, n):
    body = b'{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4}'
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    shapes = [head + b"Content-Length: %d\r\n\r\n" % len(body) + body[:20],
              head + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(body) + body[:20],
              head + b"Content-Length: %d\r\n\r\n" % len(body)]
    shut, still_open, answered = [], 0, 0
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(shapes[i % len(shapes)])
        if i % 2:
            s.close()
        else:
            s.shutdown(socket.SHUT_WR)
            shut.append(s)
    deadline = time.monotonic() + 3
    for s in shut:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = s.recv(4096)
        except socket.timeout:
            data = None
        except ConnectionResetError:
            data = b""
        s.close()
        still_open += data is None
        answered += bool(data)
    if still_open or answered:
        print(f"FAIL: of {len(shut)} connections cut short and shut, {still_open} still open "
              f"after 3 s, {answered} answered")
    while True:
        _, h, _ = health(port, 5)
        if h["connections"]["open"] == 1 and h["requests"]["in_flight"] == 1:
            break
        if time.monotonic() > deadline:
            print(f"FAIL: {h['connections']['open']} connections and "
                  f"{h['requests']['in_flight']} requests open 3 s after {n} were cut short")
            return 1
        time.sleep(0.05)
    print(f"{n} connections cut short: all closed, none counted")
    return 0 if not still_open and not answered else 1


def main():
    port = int(sys.argv[2])
    if sys.argv[1] == "limit":
        return limit(port, int(sys.argv[3]))
    if sys.argv[1] == "cut":
        return cut(port, int(sys.argv[3]))
    return idle(port, int(sys.argv[3]), float(sys.argv[4]),
                int(sys.argv[5]) if len(sys.argv) > 5 else None)


if __name__ == "__main__":
    sys.exit(main())
