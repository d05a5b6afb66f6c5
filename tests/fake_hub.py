#!/usr/bin/env python3
"""fake_hub.py MODEL.gguf - a local stand-in for the Hugging Face hub, for
tests/test_pull.sh. Never the real hub.

Serves, on 127.0.0.1 (a free port, printed on the first line of stdout):
  GET /api/models/test/REPO/tree/main[?recursive=true]   the file list in
        the hub's shape (files in folders only with recursive=true)
        ([{type, path, size, oid, lfs: {oid, size, pointerSize}}]), three
        entries a page, the next page named by a Link: <...>; rel="next"
  GET /test/REPO/resolve/main/FILE      302 to http://localhost:PORT/cdn/...
        (another host name: the token must not follow), with X-Linked-Etag
        and X-Linked-Size as the hub sends them for LFS files
  GET /cdn/test/REPO/FILE               the bytes; Range: bytes=N- and
        If-Range honoured (206 / 200), ETag
  GET /plain/FILE                       the model at a plain URL (no hashes)
  GET /_stats                           what was asked: [{path, query, range,
        if_range, auth}] for every request
The repo's name selects a fault (see REPOS below). Every file's content is
MODEL's, except where a fault says otherwise.
"""
import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs

MODEL = open(sys.argv[1], "rb").read()
GARBAGE = b"NOTGGUF!" + bytes(range(256)) * 64
TOKEN = "sekrit-token-123"
PAGE = 3

# repo -> list of (path, content); the fault is the repo's name
REPOS = {
    # the default pick (Q4_K_M) is on the third page: the pages must be followed
    "good": ["README.md", "good-Q8_0.gguf", "good-Q4_K_S.gguf", "mmproj-good-f16.gguf",
             "good-Q5_K_M-00001-of-00002.gguf", "good-Q5_K_M-00002-of-00002.gguf", "sub/",
             "sub/deep-Q6_K.gguf", "good-Q4_K_M.gguf"],
    "single": ["tiny.gguf"],
    "noquant": ["a-F16.gguf", "b-F32.gguf"],
    "badsum": ["badsum-Q4_K_M.gguf"],       # the tree's lfs.oid is wrong
    "linked": ["linked.gguf"],              # no lfs in the tree: X-Linked-* only
    "linkedbad": ["linkedbad.gguf"],        # no lfs, X-Linked-Etag wrong
    "sizeoff": ["sizeoff.gguf"],            # the tree says 100 bytes more
    "cut": ["cut-Q4_K_M.gguf"],             # first transfer cut halfway
    "cutnorange": ["cutnorange.gguf"],      # cut, and Range ignored (200)
    "stall": ["stall.gguf"],                # half, then nothing
    "badmagic": ["badmagic.gguf"],          # not GGUF (right hash and size)
    "gone": ["gone.gguf"],                  # listed, but resolve/ is 404
    "private": ["private.gguf"],            # needs the token (401 without)
}

lock = threading.Lock()
log = []          # every request
cut_done = set()  # repos whose first transfer was cut already


def content(repo, path):
    if path.endswith("README.md"):
        return b"# a model\n"
    return GARBAGE if repo == "badmagic" else MODEL


def sha(b):
    return hashlib.sha256(b).hexdigest()


def tree(repo, recursive):
    out = []
    for p in REPOS[repo]:
        if "/" in p.rstrip("/") and not recursive:
            continue
        if p.endswith("/"):
            out.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": p[:-1]})
            continue
        b = content(repo, p)
        e = {"type": "file", "oid": hashlib.sha1(b).hexdigest(), "size": len(b), "path": p}
        if p.endswith(".gguf") and repo not in ("linked", "linkedbad"):
            e["lfs"] = {"oid": sha(b), "size": len(b), "pointerSize": 134}
            e["size"] = len(b)
            if repo == "badsum":
                e["lfs"]["oid"] = sha(b"something else")
            if repo == "sizeoff":
                e["lfs"]["size"] = len(b) + 100
        out.append(e)
    return out


class Hub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send(self, code, body=b"", ctype="application/json", headers=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        u = urlsplit(self.path)
        parts = u.path.strip("/").split("/")
        auth = self.headers.get("Authorization")
        with lock:
            log.append({"path": u.path, "query": u.query, "range": self.headers.get("Range"),
                        "if_range": self.headers.get("If-Range"), "auth": auth})
        if u.path == "/_stats":
            with lock:
                return self.send(200, json.dumps(log).encode())
        repo = parts[3] if parts[0] == "api" and len(parts) > 3 else \
            parts[1] if len(parts) > 1 else ""
        if repo == "private" and parts[0] in ("api", "test") and auth != "Bearer " + TOKEN:
            return self.send(401, b'{"error":"Invalid credentials"}')
        # /api/models/test/REPO/tree/main
        if parts[:2] == ["api", "models"] and len(parts) == 6 and parts[4:] == ["tree", "main"]:
            repo = parts[3]
            if parts[2] != "test" or repo not in REPOS:
                return self.send(404, b'{"error":"Repository not found"}')
            q = parse_qs(u.query)
            recursive = q.get("recursive", ["false"])[0] == "true"
            entries = tree(repo, recursive)
            start = int(q.get("cursor", ["0"])[0])
            page = entries[start:start + PAGE]
            hdrs = []
            if start + PAGE < len(entries):
                nxt = "http://127.0.0.1:%d/api/models/test/%s/tree/main?%scursor=%d" % (
                    self.server.server_port, repo, "recursive=true&" if recursive else "",
                    start + PAGE)
                hdrs.append(("Link", '<%s>; rel="next"' % nxt))
            return self.send(200, json.dumps(page).encode(), headers=hdrs)
        # /test/REPO/resolve/main/FILE
        if len(parts) >= 5 and parts[0] == "test" and parts[2:4] == ["resolve", "main"]:
            path = "/".join(parts[4:])
            if repo not in REPOS or path not in REPOS[repo] or repo == "gone":
                return self.send(404, b'{"error":"Entry not found"}')
            b = content(repo, path)
            hdrs = [("Location", "http://localhost:%d/cdn/test/%s/%s?sig=abc" % (
                self.server.server_port, repo, path))]
            if path.endswith(".gguf"):
                linked = sha(b"wrong") if repo == "linkedbad" else sha(b)
                hdrs += [("X-Linked-Etag", '"%s"' % linked), ("X-Linked-Size", str(len(b)))]
            return self.send(302, b"", headers=hdrs)
        if parts[0] == "cdn" and len(parts) >= 4:
            path = "/".join(parts[3:])
            if parts[2] not in REPOS or path not in REPOS[parts[2]]:
                return self.send(404, b"not found", "text/plain")
            return self.serve_file(parts[2], content(parts[2], path))
        if parts[0] == "plain" and len(parts) == 2:
            if parts[1] in ("missing.gguf",):
                return self.send(404, b"not found", "text/plain")
            return self.serve_file("plain", MODEL)
        return self.send(404, b'{"error":"not found"}')

    def serve_file(self, repo, b):
        etag = '"%s"' % sha(b)[:16]
        start = 0
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and rng.startswith("bytes=") and repo != "cutnorange":
            if if_range is None or if_range == etag:
                start = int(rng[6:].split("-")[0])
        if start >= len(b) and start > 0:
            return self.send(416, b"", "text/plain",
                             [("Content-Range", "bytes */%d" % len(b))])
        body = b[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        if start:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(b) - 1, len(b)))
        self.end_headers()
        half = len(b) // 2
        if repo in ("cut", "cutnorange") and start == 0:
            with lock:
                first = repo not in cut_done
                cut_done.add(repo)
            if first:
                self.wfile.write(body[:half])
                self.wfile.flush()
                self.close_connection = True
                return
        if repo == "stall":
            self.wfile.write(body[:half])
            self.wfile.flush()
            time.sleep(20)  # the client gives up first (stall_timeout)
            self.close_connection = True
            return
        self.wfile.write(body)


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    srv.daemon_threads = True
    print(srv.server_port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
