#!/usr/bin/env python3
"""soak.py - load and faults against one hearthd for a fixed time, then a
check that it came through whole (issue 13)

    soak.py HEARTHD MODEL [--seconds 120] [--clients 64] [--port 0] [--json]

It starts HEARTHD on 127.0.0.1 (loopback only) with MODEL and a config file
of its own (written to a temporary directory: max_queue, header_timeout and
idle_timeout as given below; parallel and threads are hearthd's defaults),
waits for /health, warms up (two rounds of as many streams at once as
hearthd has slots, each as long as the longest the streamers send: every
slot has run and touched its KV cache that far), and samples the idle state:
VmRSS once it has held within 1% for 2 s (hearthd gives freed heap back a
second after its last request), open descriptors (/proc/PID/fd),
connections.open from /health. Then, for --seconds:

  streamers   --clients clients in a loop, each a streamed chat completion
              (stream=true, max_tokens 4-48, a different prompt each time,
              half of them with stream_options.include_usage, half of the
              clients keeping their connection alive between requests).
              A stream must be whole: 200, text/event-stream, every event
              `data: JSON` of a chat.completion.chunk with one id (or an
              SSE comment), one finish_reason chunk (stop or length), the
              usage chunk when asked for, then `data: [DONE]` and the end of
              the body; or the request gets 429 or 503 in the OpenAI error
              shape. Anything else is a failure, counted and printed.
  hang-ups    --hangup of the streamers' requests end early on purpose: at
              once after sending (still queued or in prefill), or after a
              random number of events; by close (FIN) or by reset (RST).
  garbage     --garbage workers, each sending one of these at a time and
              expecting its own answer:
                truncated_json    400 invalid_json
                invalid_utf8      400 invalid_json (a 0xff byte in content)
                nul_in_json       400, a message that does not name jansson
                huge_announced    413 request_too_large (Content-Length 9 MiB,
                                  answered before the body is sent)
                huge_chunked      413 request_too_large (9 MiB sent chunked)
                non_http          closed without an answer, or a 400
                chunked_cut       a chunked body cut short, the client's side
                                  shut: closed within 5 s, no answer
                length_cut        the same with Content-Length
  slow        --slow connections sending a request's headers a byte a second:
              closed without an answer once header_timeout has passed since
              they were opened (not before it, nor more than 5 s after).
  idle        --idle connections opened and held (half send nothing, half
              part of their headers); hearthd closes each after
              header_timeout, and it is opened again while time is left.
  health      GET /health every 0.5 s, from a process of its own: it must
              answer within --health-limit.

At the end new requests stop, the streams still running may finish (15 s),
every connection of this script is closed, and then, each polled until it
holds or its deadline passes:

  - hearthd alive: its pid, /health 200;
  - /health: running 0, queued 0, in_flight 1 (itself), connections.open
    back to its idle value;
  - /metrics: in_flight 1, queue and busy slots 0; per status of
    /v1/chat/completions, the count lies between what this script saw and
    that plus the requests it hung up on before their status (the server
    may have answered those 200, 429 or nothing); /health's 200s equal the
    script's; completion and prompt tokens at least what the streams
    reported;
  - VmRSS within 10% of the idle value (skipped with --no-rss-bound, for
    sanitizer builds), the series printed;
  - descriptors back to the idle count;
  - hearthd stops on SIGTERM with status 0 and its log holds no sanitizer
    report.

A summary table follows (--json: one JSON document instead); the exit
status is 1 when any condition failed, 2 on a usage or start-up error. It
ends by itself within --seconds + 60 s (a watchdog kills hearthd and exits
2 past that).

Only the Python 3 standard library: raw HTTP/1.1 over asyncio streams.
"""
import argparse
import asyncio
import ctypes
import json
import multiprocessing
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

WORDS = """river mountain lantern quiet orange harbor thunder pencil garden
silver morning window travel basket candle forest yellow market ocean bridge
whisper kitchen winter meadow copper village shadow ladder planet button
summer feather island engine marble pocket castle violet rabbit blanket""".split()

CHAT = "/v1/chat/completions"
HUGE = 9 << 20          # beyond the default max_body_size (8M)
REQUEST_DEADLINE = 60   # a well-formed request unanswered this long is a failure
CUT_CLOSE_S = 5.0       # a cut body: hearthd closes within this
now = time.monotonic


# ---------------------------------------------------------------- tallies

class Tally:
    """Counts by (group, outcome), failures with samples, what the checks need."""

    def __init__(self):
        self.counts = {}
        self.failures = {}
        self.status = {}          # chat endpoint: status -> requests answered with it
        self.unknown = 0          # chat requests hung up on before their status
        self.health_ok = 0        # /health 200s received (the monitor, the checks)
        self.completion_tokens = 0
        self.prompt_tokens = 0
        self.streams_ok = 0

    def add(self, group, outcome):
        self.counts[(group, outcome)] = self.counts.get((group, outcome), 0) + 1

    def fail(self, group, what):
        self.add(group, "FAILED")
        self.failures.setdefault(group, []).append(what)

    def saw(self, status):
        """A chat request hearthd counts under status (an int, or 'none')."""
        self.status[str(status)] = self.status.get(str(status), 0) + 1


T = Tally()


# ---------------------------------------------------------------- HTTP

class Conn:
    """One connection: raw HTTP/1.1 over asyncio streams."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer

    @classmethod
    async def open(cls, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(reader, writer)

    def close(self, reset=False):
        if reset:
            self.w.transport.abort()  # RST (SO_LINGER 0 is what abort does on Linux)
        else:
            self.w.close()

    async def send(self, data):
        self.w.write(data)
        await self.w.drain()

    async def head(self):
        """Status and headers of a response; ConnectionError when closed first."""
        line = await self.r.readline()
        if not line:
            raise ConnectionError("closed before a status line")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ConnectionError(f"bad status line {line[:60]!r}")
        headers = {}
        while (h := await self.r.readline()) not in (b"\r\n", b"\n"):
            if not h:
                raise ConnectionError("closed inside the headers")
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        return int(parts[1]), headers

    async def body_chunks(self, headers):
        """The body as it arrives (chunked, Content-Length or until close)."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size_line = await self.r.readline()
                if not size_line:
                    raise ConnectionError("closed inside a chunked body")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while (await self.r.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield await self.r.readexactly(size)
                if await self.r.readexactly(2) != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
        elif "content-length" in headers:
            yield await self.r.readexactly(int(headers["content-length"]))
        else:
            while chunk := await self.r.read(65536):
                yield chunk

    async def body(self, headers):
        return b"".join([c async for c in self.body_chunks(headers)])


def request(method, path, body=b"", extra=(), close=True, ctype="application/json"):
    head = [f"{method} {path} HTTP/1.1", "Host: localhost"]
    if close:
        head.append("Connection: close")
    if body or method == "POST":
        head += [f"Content-Type: {ctype}", f"Content-Length: {len(body)}"]
    head += list(extra)
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def get(port, path, timeout=5.0):
    """GET on a new connection: status, parsed JSON or text body, seconds taken."""
    t0 = now()
    async with asyncio.timeout(timeout):
        c = await Conn.open(port)
        try:
            await c.send(request("GET", path))
            status, headers = await c.head()
            body = await c.body(headers)
        finally:
            c.close()
    if path == "/health" and status == 200:
        T.health_ok += 1
    if headers.get("content-type", "").startswith("application/json"):
        return status, json.loads(body), now() - t0
    return status, body.decode(errors="replace"), now() - t0


def error_shape(body):
    """The OpenAI error object's code, or None when body is not that shape."""
    try:
        e = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return None
    if not (isinstance(e, dict) and isinstance(e.get("message"), str)
            and isinstance(e.get("type"), str) and "code" in e and "param" in e):
        return None
    return str(e["code"])


# ---------------------------------------------------------------- streamers

def prompt(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40))).capitalize() + "."


async def check_stream(c, headers, usage_wanted, max_tokens):
    """Read a 200 stream to its end; None when whole, else what is wrong."""
    if not headers.get("content-type", "").startswith("text/event-stream"):
        return f"content-type {headers.get('content-type')!r}"
    buf, data, events, ids = b"", [], [], set()
    finish, usage, done = None, None, False
    async for chunk in c.body_chunks(headers):
        buf += chunk
        while (i := buf.find(b"\n")) >= 0:
            line, buf = buf[:i].rstrip(b"\r"), buf[i + 1:]
            if done and line:
                return f"bytes after [DONE]: {line[:60]!r}"
            if line.startswith(b":"):
                continue                       # comment (": ping")
            if line.startswith(b"data: "):
                data.append(line[6:])
                continue
            if line:
                return f"not an SSE line: {line[:60]!r}"
            if not data:
                continue
            ev, data = b"\n".join(data), []
            if ev == b"[DONE]":
                done = True
                continue
            try:
                obj = json.loads(ev)
            except ValueError:
                return f"event not JSON: {ev[:80]!r}"
            if "error" in obj:
                return f"error event: {json.dumps(obj['error'])[:160]}"
            if obj.get("object") != "chat.completion.chunk":
                return f"object {obj.get('object')!r}"
            ids.add(obj.get("id"))
            if finish is not None and obj.get("choices"):
                return "a choice chunk after the finish_reason chunk"
            for ch in obj.get("choices") or []:
                if ch.get("finish_reason") is not None:
                    finish = ch["finish_reason"]
            if obj.get("usage"):
                usage = obj["usage"]
            events.append(obj)
    if buf.strip() or data:
        return f"stream ended inside an event: {buf[:60]!r}"
    if not done:
        return "no data: [DONE]"
    if len(ids) != 1:
        return f"{len(ids)} different ids"
    if finish not in ("stop", "length"):
        return f"finish_reason {finish!r}"
    if usage_wanted:
        if not usage:
            return "no usage chunk"
        if usage.get("completion_tokens", 0) > max_tokens:
            return f"completion_tokens {usage.get('completion_tokens')} > max_tokens {max_tokens}"
        if finish == "length" and usage.get("completion_tokens") != max_tokens:
            return f"finish_reason length at {usage.get('completion_tokens')} of {max_tokens}"
        T.completion_tokens += usage.get("completion_tokens", 0)
        T.prompt_tokens += usage.get("prompt_tokens", 0)
    return None


async def streamer(i, port, args, stop):
    rng = random.Random(args.seed * 1000 + i)
    keep_alive = i % 2 == 1
    c = None
    while now() < stop:
        max_tokens = rng.randint(4, 48)
        usage_wanted = rng.random() < 0.5
        body = {"messages": [{"role": "user", "content": prompt(rng)}], "stream": True,
                "max_tokens": max_tokens, "temperature": rng.choice([0, 0.8])}
        if usage_wanted:
            body["stream_options"] = {"include_usage": True}
        hang = rng.random() < args.hangup
        hang_at = rng.choice([0, 0, rng.randint(1, max_tokens + 2)]) if hang else None
        reset = rng.random() < 0.5
        raw = request("POST", CHAT, json.dumps(body).encode(), close=not keep_alive)
        status, reused = None, c is not None
        try:
            async with asyncio.timeout(REQUEST_DEADLINE):
                if c is None:
                    c = await Conn.open(port)
                await c.send(raw)
                if hang_at == 0:
                    T.unknown += 1
                    T.add("streamer", "hung up at once")
                    c.close(reset)
                    c = None
                    continue
                status, headers = await c.head()
                T.saw(status)
                if status == 200 and hang:
                    n = 0
                    async for _ in c.body_chunks(headers):
                        n += 1
                        if n >= hang_at:
                            break
                    T.add("streamer", f"hung up mid-stream ({'RST' if reset else 'FIN'})")
                    c.close(reset)
                    c = None
                    continue
                if status == 200:
                    wrong = await check_stream(c, headers, usage_wanted, max_tokens)
                    if wrong:
                        T.fail("streamer", wrong)
                        c.close()
                        c = None
                        continue
                    T.streams_ok += 1
                    T.add("streamer", "200 complete stream")
                else:
                    text = await c.body(headers)
                    code = error_shape(text)
                    if status in (429, 503) and code:
                        T.add("streamer", f"{status} {code}")
                        if "retry-after" in headers or status == 429:
                            await asyncio.sleep(rng.uniform(0.05, 0.3))  # a client's back-off
                    else:
                        T.fail("streamer", f"HTTP {status}: {text[:160]!r}")
                if not keep_alive or headers.get("connection", "").lower() == "close":
                    c.close()
                    c = None
        except TimeoutError:
            T.fail("streamer", f"no complete answer within {REQUEST_DEADLINE} s (status {status})")
            if c:
                c.close()
            c = None
        except (OSError, EOFError, ValueError, asyncio.IncompleteReadError, ConnectionError) as e:
            if reused and status is None:
                # the server may close a kept-alive connection between requests
                # (idle deadline): then the request was never read; try anew
                T.add("streamer", "kept-alive connection closed, request sent again")
            else:
                T.fail("streamer", f"{type(e).__name__}: {e} (status {status})")
            if c:
                c.close()
            c = None
    if c:
        c.close()


# ---------------------------------------------------------------- garbage

CHAT_BODY = json.dumps({"messages": [{"role": "user", "content": "Tell me a story"}],
                        "max_tokens": 4}).encode()


async def answer(c, timeout):
    """(status, code or None, raw) of the response on c, or ('closed', None, b'')."""
    try:
        async with asyncio.timeout(timeout):
            status, headers = await c.head()
            text = await c.body(headers)
        return status, error_shape(text), text
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        return "closed", None, b""


async def g_truncated_json(port, rng):
    body = CHAT_BODY[:rng.randint(1, len(CHAT_BODY) - 2)]
    c = await Conn.open(port)
    await c.send(request("POST", CHAT, body))
    return await answer(c, 10), {(400, "invalid_json")}, True


async def g_invalid_utf8(port, rng):
    body = b'{"messages":[{"role":"user","content":"caf\xc3 \xff\xfe na\xefve"}],"max_tokens":4}'
    c = await Conn.open(port)
    await c.send(request("POST", CHAT, body))
    return await answer(c, 10), {(400, "invalid_json")}, True


async def g_nul_in_json(port, rng):
    body = b'{"messages":[{"role":"user","content":"a\\u0000b"}],"max_tokens":4}'
    c = await Conn.open(port)
    await c.send(request("POST", CHAT, body))
    got = await answer(c, 10)
    if b"JSON_ALLOW_NUL" in got[2]:
        got = (got[0], "names JSON_ALLOW_NUL", got[2])
    return got, {(400, "invalid_json"), (400, "invalid_request"), (400, "invalid_value")}, True


async def g_huge_announced(port, rng):
    c = await Conn.open(port)
    head = request("POST", CHAT, b"", close=True).replace(b"Content-Length: 0",
                                                          f"Content-Length: {HUGE}".encode())
    await c.send(head)
    return await answer(c, 10), {(413, "request_too_large")}, True


async def g_huge_chunked(port, rng):
    c = await Conn.open(port)
    head = request("POST", CHAT, b"", close=True).replace(b"Content-Length: 0",
                                                          b"Transfer-Encoding: chunked")
    await c.send(head)
    block = b"x" * 65536
    chunk = b"%x\r\n" % len(block) + block + b"\r\n"
    try:
        for _ in range(HUGE // len(block)):
            await c.send(chunk)
        await c.send(b"0\r\n\r\n")
    except OSError:
        pass  # answered and closed early: read what came
    return await answer(c, 10), {(413, "request_too_large")}, True


async def g_non_http(port, rng):
    c = await Conn.open(port)
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(16, 512)))
    await c.send(rng.choice([b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"", b"SSH-2.0-x\r\n"])
                 + junk + b"\r\n\r\n")
    got = await answer(c, 10)
    if got[0] == 400 and got[1] is None:
        got = (400, "(libmicrohttpd's page)", got[2])
    return got, {("closed", None), (400, "(libmicrohttpd's page)")}, False


async def cut(port, rng, chunked):
    """A body cut short, the client's write side shut: closed within CUT_CLOSE_S."""
    c = await Conn.open(port)
    part = CHAT_BODY[:rng.randint(1, len(CHAT_BODY) - 2)]
    if chunked:
        head = request("POST", CHAT, b"", close=False).replace(b"Content-Length: 0",
                                                               b"Transfer-Encoding: chunked")
        data = head + b"%x\r\n" % len(CHAT_BODY) + part
    else:
        head = request("POST", CHAT, b"", close=False).replace(
            b"Content-Length: 0", f"Content-Length: {len(CHAT_BODY)}".encode())
        data = head + part
    await c.send(data)
    c.w.write_eof()
    t0 = now()
    try:
        async with asyncio.timeout(CUT_CLOSE_S):
            rest = await c.r.read()
    except TimeoutError:
        c.close()
        return (f"still open after {CUT_CLOSE_S:g} s", None, b""), {("closed", None)}, False
    except OSError:
        rest = b""
    c.close()
    T.saw("none")  # hearthd counts the request as it closes: no status sent
    if rest:
        return (rest.split(b"\r\n", 1)[0].decode(errors="replace"), None, rest), \
            {("closed", None)}, False
    return ("closed", None, f"{now() - t0:.2f}".encode()), {("closed", None)}, False


async def g_chunked_cut(port, rng):
    return await cut(port, rng, True)


async def g_length_cut(port, rng):
    return await cut(port, rng, False)


GARBAGE = [g_truncated_json, g_invalid_utf8, g_nul_in_json, g_huge_announced, g_huge_chunked,
           g_non_http, g_chunked_cut, g_length_cut]


async def garbage(i, port, args, stop):
    rng = random.Random(args.seed * 1000 + 500 + i)
    while now() < stop:
        kind = rng.choice([g for g in GARBAGE if not args.kinds or g.__name__[2:] in args.kinds])
        name = kind.__name__[2:]
        try:
            (status, code, raw), expected, counted = await kind(port, rng)
        except (OSError, ConnectionError) as e:
            T.fail(name, f"{type(e).__name__}: {e}")
            continue
        if counted and isinstance(status, int):
            T.saw(status)
        if (status, code) in expected:
            T.add(name, f"{status} {code}" if code else str(status))
        else:
            T.fail(name, f"got {status} {code or ''} {raw[:120]!r}")


# ---------------------------------------------------------------- slow and idle

async def slow_headers(i, port, args, stop):
    """A byte a second until hearthd closes the connection."""
    head = request("POST", CHAT, CHAT_BODY)
    timeout = args.header_timeout
    while now() + timeout + 6 < stop:
        t0, sent, got = now(), 0, b""  # before connect, as hearthd's deadline starts at accept
        c = await Conn.open(port)
        try:
            async with asyncio.timeout(timeout + 5):
                while True:
                    try:
                        await c.send(head[sent:sent + 1])
                    except OSError:
                        break
                    sent += 1
                    try:
                        async with asyncio.timeout(1.0):
                            got = await c.r.read(4096)
                        break           # closed (or an answer)
                    except TimeoutError:
                        continue
        except TimeoutError:
            T.fail("slow_headers", f"still open {timeout + 5:g} s after it was opened")
            c.close()
            continue
        except OSError:
            pass
        age = now() - t0
        c.close()
        if got:
            T.fail("slow_headers", f"an answer after {sent} bytes: {got[:80]!r}")
        elif age < timeout - 0.5:
            T.fail("slow_headers", f"closed after {age:.1f} s, before header_timeout")
        else:
            T.add("slow_headers", f"closed after header_timeout ({sent} bytes sent)")


class Idle:
    """--idle connections held open; each reopened when hearthd closes it."""

    def __init__(self, port, args):
        self.port, self.args = port, args
        self.open = 0
        self.closed_after = []
        self.tasks = []

    async def one(self, i, stop, ready):
        timeout = self.args.header_timeout
        first = True
        while True:
            t0 = now()  # before connect: hearthd's header_timeout starts at its accept
            try:
                c = await Conn.open(self.port)
            except OSError as e:
                T.fail("idle", f"connect: {e}")
                if first:
                    ready.release()
                return
            if i % 2:
                await c.send(b"GET /health HTTP/1.1\r\nHost: local")
            self.open += 1
            if first:
                ready.release()
                first = False
            try:
                got = await c.r.read(4096)
            except OSError:
                got = b""
            except asyncio.CancelledError:
                self.open -= 1
                c.close()
                raise
            self.open -= 1
            age = now() - t0
            c.close()
            self.closed_after.append(age)
            if got:
                T.fail("idle", f"an idle connection got an answer: {got[:60]!r}")
            elif age < timeout - 0.5:
                T.fail("idle", f"closed after {age:.1f} s, before header_timeout")
            elif age > timeout + 5:
                T.fail("idle", f"closed after {age:.1f} s, header_timeout {timeout} s")
            else:
                T.add("idle", "closed after header_timeout")
            if now() + timeout > stop:
                return

    async def start(self, stop):
        """Open them 50 at a time; return once all are open."""
        ready = asyncio.Semaphore(0)
        for i in range(self.args.idle):
            self.tasks.append(asyncio.create_task(self.one(i, stop, ready)))
            if i % 50 == 49:
                for _ in range(50):
                    await ready.acquire()
        for _ in range(self.args.idle % 50):
            await ready.acquire()

    async def stop(self):
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def health_probe(port, stop, out):
    """In a process of its own (so that this script's busy event loop does
    not add to the figure): GET /health every 0.5 s on a new connection
    until stop; sends [(t, seconds, status, open, running, queued, error)]."""
    samples = []
    while now() < stop:
        t = now()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(request("GET", "/health"))
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            h = json.loads(body)
            samples.append((t, now() - t, int(head.split()[1]), h["connections"]["open"],
                            h["requests"]["running"], h["requests"]["queued"], None))
        except (OSError, ValueError, IndexError, KeyError) as e:
            samples.append((t, now() - t, None, None, None, None, f"{type(e).__name__}: {e}"))
        time.sleep(max(0.0, 0.5 - (now() - t)))
    out.send(samples)
    out.close()


async def health_monitor(port, args, stop, samples, run_start):
    parent, child = multiprocessing.Pipe(duplex=False)
    proc = multiprocessing.Process(target=health_probe, args=(port, stop, child), daemon=True)
    proc.start()
    child.close()
    loop = asyncio.get_running_loop()
    got = await loop.run_in_executor(None, lambda: parent.recv() if parent.poll(
        max(1.0, stop - now() + 10)) else [])
    proc.join(5)
    for t, took, status, n_open, running, queued, err in got:
        samples.append((t, took, status, n_open, running, queued))
        at = f"at {t - run_start:.1f} s"
        if err:
            T.fail("health", f"/health {at}: {err}")
        elif status != 200:
            T.fail("health", f"/health {at}: {status}")
        elif took > args.health_limit:
            T.fail("health", f"/health {at} took {took:.2f} s")
        else:
            T.add("health", "200 in time")
            T.health_ok += 1


# ---------------------------------------------------------------- hearthd

class Daemon:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.log = os.path.join(tmp, "hearthd.log")
        self.conf = os.path.join(tmp, "soak.conf")
        self.proc = None
        self.port = None

    def start(self):
        with open(self.conf, "w") as f:
            f.write("# written by tests/bench/soak.py\n[server]\n"
                    f"max_queue = {self.args.max_queue}\n"
                    f"header_timeout = {self.args.header_timeout}\n"
                    f"idle_timeout = {self.args.idle_timeout}\n"
                    f"[log]\nlevel = {self.args.log_level}\n")
        cmd = [self.args.hearthd, "--config", self.conf, "--model", self.args.model,
               "--host", "127.0.0.1", "--port", str(self.args.port)]
        self.cmd = cmd
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=die_with_parent)

    async def ready(self, deadline):
        while now() < deadline and self.proc.poll() is None:
            with open(self.log, "rb") as f:
                m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", f.read())
            if m:
                self.port = int(m[1])
                try:
                    if (await get(self.port, "/health", 2))[0] == 200:
                        return True
                except (OSError, TimeoutError, ConnectionError):
                    pass
            await asyncio.sleep(0.1)
        return False

    def rss_kib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                return int(re.search(r"VmRSS:\s+(\d+)", f.read())[1])
        except (OSError, TypeError):
            return None

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout):
        if not self.alive():
            return self.proc.poll() if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "killed (no exit within its shutdown deadline)"

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")


def die_with_parent():
    """In the child: SIGTERM when this script dies, even by SIGKILL (Linux prctl)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def server_sockets(port):
    """hearthd's TCP sockets on port by state, with how many hold unread bytes
    (ss(8)); for the report when connections stay open."""
    try:
        out = subprocess.run(["ss", "-tanH", f"sport = :{port}"], capture_output=True,
                             text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    states = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0] != "LISTEN":
            key = f[0] + (" (unread bytes)" if f[1] != "0" else "")
            states[key] = states.get(key, 0) + 1
    return states


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of the Prometheus text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$', line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m[2] or ""))
        out[(m[1], labels)] = float(m[3])
    return out


def metric(ms, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in ms.items() if n == name and want <= set(ls))


async def poll(fn, deadline, interval=0.5):
    """Call fn (async) until it returns (True, value) or the deadline passes."""
    ok, value = await fn()
    while not ok and now() < deadline:
        await asyncio.sleep(interval)
        ok, value = await fn()
    return ok, value


async def settle_rss(d, deadline):
    """VmRSS once it has held within 1% for 2 s (hearthd trims its heap a
    second after its last request), or at the deadline."""
    window = [d.rss_kib()]
    while now() < deadline:
        await asyncio.sleep(0.5)
        window = (window + [d.rss_kib()])[-5:]
        if len(window) == 5 and None not in window and max(window) - min(window) <= window[0] / 100:
            break
    return window[-1]


# ---------------------------------------------------------------- the run

async def warm_up(d, slots):
    """Two rounds of `slots` streams at once, each as long as the longest
    the streamers send (a 40-word prompt, max_tokens 48): every slot has run
    and has touched the memory (KV cache pages) such a request needs."""
    rng = random.Random(0)

    async def one(k):
        c = await Conn.open(d.port)
        words = " ".join(rng.choice(WORDS) for _ in range(40))
        body = {"messages": [{"role": "user", "content": words.capitalize() + "."}],
                "stream": True, "max_tokens": 48}
        await c.send(request("POST", CHAT, json.dumps(body).encode()))
        status, headers = await c.head()
        T.saw(status)
        wrong = await check_stream(c, headers, False, 48) if status == 200 else f"HTTP {status}"
        c.close()
        if wrong:
            T.fail("warm-up", wrong)
    for rnd in range(2):
        await asyncio.gather(*(one(rnd * slots + k) for k in range(slots)))


async def setup(args, d, checks, report):
    """Start hearthd, warm it up, sample the idle state; False when it did not come up."""
    d.start()
    if not await d.ready(now() + 10):
        sys.stderr.write(f"soak.py: hearthd did not come up; its log:\n{d.log_text()[-3000:]}")
        return False
    _, ms_text, _ = await get(d.port, "/metrics")
    slots = int(metric(parse_metrics(ms_text), "hearth_slots")) or 4
    async with asyncio.timeout(15):
        await warm_up(d, slots)
    idle_rss = await settle_rss(d, now() + 8)
    _, h, _ = await get(d.port, "/health")
    report.update(pid=d.proc.pid, port=d.port, slots=slots, cmd=d.cmd, idle_rss_kib=idle_rss,
                  base_fds=d.fds(), base_connections=h["connections"]["open"],
                  max_connections=h["connections"]["max"])
    if h["connections"]["max"] < args.idle + args.clients + args.slow + args.garbage + 16:
        checks.append(("max_connections fits the soak", False,
                       f"{h['connections']['max']} (hearthd's open-file limit?)"))
    return True


async def run(args, d, checks, report, drain_end):
    """Every client for --seconds, then the streams running may finish until drain_end."""
    run_start = now()
    stop = run_start + args.seconds
    report["rss_series"], report["health_samples"] = [(0.0, report["idle_rss_kib"])], []
    idle = Idle(d.port, args)
    tasks = [asyncio.create_task(health_monitor(d.port, args, stop, report["health_samples"],
                                                run_start))]
    async with asyncio.timeout(min(30, args.seconds)):
        await idle.start(stop)
    report["idle_open_s"] = round(now() - run_start, 2)
    tasks += [asyncio.create_task(streamer(i, d.port, args, stop)) for i in range(args.clients)]
    tasks += [asyncio.create_task(garbage(i, d.port, args, stop)) for i in range(args.garbage)]
    tasks += [asyncio.create_task(slow_headers(i, d.port, args, stop)) for i in range(args.slow)]
    while now() < stop and d.alive():
        await asyncio.sleep(min(1.0, max(0.0, stop - now())))
        report["rss_series"].append((round(now() - run_start, 1), d.rss_kib()))
    try:  # no new requests now
        async with asyncio.timeout(max(1.0, drain_end - now())):
            await asyncio.gather(*tasks, return_exceptions=True)
    except TimeoutError:
        late = sum(not t.done() for t in tasks)
        checks.append(("clients done within the drain", False, f"{late} still running"))
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await idle.stop()
    report["idle_closed"] = len(idle.closed_after)
    report["run_s"] = round(now() - run_start, 1)


async def check_quiet(d, checks, report, deadline):
    """/health: no request, slot or connection left (polled until the deadline)."""
    base = report["base_connections"]

    async def quiet():
        status, h, _ = await get(d.port, "/health")
        r, c = h["requests"], h["connections"]
        ok = (status == 200 and r["running"] == 0 and r["queued"] == 0 and r["in_flight"] == 1
              and c["open"] == base)
        return ok, (status, r, c)
    t0 = now()
    _, (status, r, c) = await poll(quiet, deadline)
    report["health_end"] = {"requests": r, "connections": c, "after_s": round(now() - t0, 1)}
    checks.append(("/health 200", status == 200, str(status)))
    checks.append(("no busy slot, queue 0", r["running"] == 0 and r["queued"] == 0,
                   f"running {r['running']}, queued {r['queued']}"))
    checks.append(("requests in flight back to 1 (the probe)", r["in_flight"] == 1,
                   f"{r['in_flight']}"))
    checks.append(("connections back to baseline", c["open"] == base,
                   f"{c['open']} open, {base} at idle"))
    if c["open"] != base:
        report["server_sockets"] = server_sockets(d.port) or {}
        report["server_sockets"]["descriptors"] = d.fds()


async def check_metrics(d, checks, report):
    """/metrics against what this script counted."""
    _, ms_text, _ = await get(d.port, "/metrics")
    ms = parse_metrics(ms_text)
    tok = report["metrics"] = {
        "completion_tokens": metric(ms, "hearth_completion_tokens_total"),
        "prompt_tokens": metric(ms, "hearth_prompt_tokens_total"),
        "forward_passes": metric(ms, "hearth_forward_passes_total"),
        "ttft_count": metric(ms, "hearth_time_to_first_token_seconds_count")}
    gauges = {g: metric(ms, g) for g in ("hearth_http_requests_in_flight", "hearth_queue_depth",
                                         "hearth_requests_running", "hearth_slots_busy")}
    checks.append(("/metrics gauges: in flight 1, queue, running, busy slots 0",
                   gauges == {"hearth_http_requests_in_flight": 1, "hearth_queue_depth": 0,
                              "hearth_requests_running": 0, "hearth_slots_busy": 0},
                   ", ".join(f"{k[6:]} {v:g}" for k, v in gauges.items())))
    by_status = {}
    for (n, ls), v in ms.items():
        lab = dict(ls)
        if n == "hearth_http_requests_total" and lab.get("endpoint") == CHAT:
            by_status[lab["status"]] = by_status.get(lab["status"], 0) + int(v)
    report.update(chat_status_metrics=by_status, chat_status_script=dict(sorted(T.status.items())),
                  chat_unknown=T.unknown)
    bad = []
    for s in sorted(set(by_status) | set(T.status)):
        seen, counted = T.status.get(s, 0), by_status.get(s, 0)
        if not seen <= counted <= seen + T.unknown:
            bad.append(f"{s}: metrics {counted}, script {seen} (+{T.unknown} unknown)")
    total_script, total_metrics = sum(T.status.values()) + T.unknown, sum(by_status.values())
    if total_metrics != total_script:
        bad.append(f"total: metrics {total_metrics}, script {total_script}")
    checks.append(("/metrics requests by status match the script's", not bad,
                   "; ".join(bad) or f"{total_metrics} chat requests"))
    health_200 = int(metric(ms, "hearth_http_requests_total", endpoint="/health", status="200"))
    checks.append(("/metrics /health 200s = the script's", health_200 == T.health_ok,
                   f"metrics {health_200}, script {T.health_ok}"))
    checks.append(("/metrics tokens >= the streams' usage",
                   tok["completion_tokens"] >= T.completion_tokens
                   and tok["prompt_tokens"] >= T.prompt_tokens,
                   f"completion {tok['completion_tokens']:g} >= {T.completion_tokens}, "
                   f"prompt {tok['prompt_tokens']:g} >= {T.prompt_tokens}"))


async def check_memory(args, d, checks, report, deadline):
    """RSS back within 10% of idle (polled, the series kept), descriptors back."""
    idle_rss, series, t0 = report["idle_rss_kib"], [], now()

    async def rss_back():
        v = d.rss_kib()
        series.append((round(now() - t0, 1), v))
        return bool(v and v <= idle_rss * 1.10), v
    ok, end_rss = await poll(rss_back, deadline - 5, 1.0)
    peak = max(v for _, v in report["rss_series"] + series if v)
    report.update(rss_settle=series, peak_rss_kib=peak, end_rss_kib=end_rss)
    checks.append(("RSS within 10% of idle" + (" (not held: --no-rss-bound)"
                                               if args.no_rss_bound else ""),
                   ok or args.no_rss_bound, f"idle {idle_rss} KiB, peak {peak}, end {end_rss} "
                   f"({(end_rss / idle_rss - 1) * 100:+.1f}%)"))

    async def fds_back():
        n = d.fds()
        return n == report["base_fds"], n
    ok, end_fds = await poll(fds_back, deadline)
    report["end_fds"] = end_fds
    checks.append(("descriptors back to baseline", ok,
                   f"{end_fds} open, {report['base_fds']} at idle"))


async def soak(args, d, checks, report):
    """0 when it ran (the checks tell), 2 when hearthd did not come up. Every
    phase after the run has its deadline before hard_end, so that with the
    stop (at most 12 s) it all ends within --seconds + 60 s."""
    hard_end = now() + args.seconds + 45
    if not await setup(args, d, checks, report):
        return 2
    await run(args, d, checks, report, min(now() + args.seconds + 15, hard_end - 25))
    alive = d.alive()
    checks.append(("hearthd alive (pid)", alive,
                   f"pid {d.proc.pid}" if alive else f"exit status {d.proc.poll()}"))
    if alive:
        await check_quiet(d, checks, report, hard_end - 20)
        await check_metrics(d, checks, report)
        await check_memory(args, d, checks, report, hard_end)
    samples = report.pop("health_samples")
    lat = sorted(s[1] for s in samples)
    report["health"] = {"probes": len(lat),
                        "p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
                        "max_ms": round(lat[-1] * 1000, 1) if lat else None,
                        "peak_connections": max((s[3] for s in samples), default=None),
                        "peak_running": max((s[4] for s in samples), default=None),
                        "peak_queued": max((s[5] for s in samples), default=None)}
    checks.append((f"/health answered within {args.health_limit:g} s throughout",
                   not T.failures.get("health"), f"max {report['health']['max_ms']} ms over "
                   f"{len(lat)} probes"))
    return 0


def summarize(args, report, checks):
    failed_groups = {g: f for g, f in T.failures.items() if g != "health"}
    checks.append(("every request got its expected answer", not failed_groups,
                   f"{sum(len(f) for f in failed_groups.values())} failure(s)"))
    report["outcomes"] = [{"group": g, "outcome": o, "count": n}
                          for (g, o), n in sorted(T.counts.items())]
    report["failures"] = {g: f[:20] for g, f in T.failures.items()}
    report["checks"] = [{"check": c, "ok": bool(ok), "detail": det} for c, ok, det in checks]
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
        return
    print(f"\nsoak: {report.get('cmd')}\n      {args.seconds} s, {args.clients} clients "
          f"(hang-ups {args.hangup:.0%}), {args.garbage} garbage, {args.slow} slow, "
          f"{args.idle} idle; {report.get('slots')} slots; run {report.get('run_s')} s")
    print(f"\n{'group':<16}{'outcome':<52}{'count':>8}")
    for (g, o), n in sorted(T.counts.items()):
        print(f"{g:<16}{o:<52}{n:>8}")
    for g, fs in T.failures.items():
        seen = {}
        for f in fs:
            seen[f] = seen.get(f, 0) + 1
        for f, n in list(seen.items())[:8]:
            print(f"  FAIL {g}: {f}" + (f" (x{n})" if n > 1 else ""))
    if report.get("rss_series"):
        s = report["rss_series"]
        step = max(1, len(s) // 12)
        print("\nRSS KiB during the run (s: KiB): " + ", ".join(f"{t:g}: {v}" for t, v in s[::step]))
        print("RSS KiB after it: " + ", ".join(f"{t:g}: {v}" for t, v in report["rss_settle"]))
    print(f"\n{'check':<62}{'':<6}detail")
    for c, ok, det in checks:
        print(f"{c:<62}{'ok' if ok else 'FAIL':<6}{det}")
    if report.get("server_sockets"):
        print(f"hearthd's sockets at the end: {report['server_sockets']}")


def parse_args():
    doc = __doc__.split("\n\n")
    p = argparse.ArgumentParser(description=doc[0].replace("\n", " ") + ".",
                                epilog="\n\n".join(doc[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("hearthd")
    p.add_argument("model")
    p.add_argument("--seconds", type=float, default=120, help="length of the run (default 120)")
    p.add_argument("--clients", type=int, default=64, help="streaming clients (default 64)")
    p.add_argument("--port", type=int, default=0, help="hearthd's port (default 0: a free one)")
    p.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    p.add_argument("--hangup", type=float, default=0.2,
                   help="share of the streamers' requests hung up on (default 0.2)")
    p.add_argument("--garbage", type=int, default=4, help="garbage workers (default 4)")
    p.add_argument("--slow", type=int, default=4, help="slow-header connections (default 4)")
    p.add_argument("--idle", type=int, default=1000, help="idle connections held (default 1000)")
    p.add_argument("--max-queue", type=int, default=48,
                   help="hearthd's max_queue (default 48: with 64 clients and 4 slots some "
                        "requests get 429)")
    p.add_argument("--header-timeout", type=int, default=10,
                   help="hearthd's header_timeout, s (default 10: idle and slow connections "
                        "cycle within the run)")
    p.add_argument("--idle-timeout", type=int, default=60, help="hearthd's idle_timeout, s (default 60)")
    p.add_argument("--health-limit", type=float, default=1.0,
                   help="/health must answer within this, s (default 1)")
    p.add_argument("--no-rss-bound", action="store_true",
                   help="do not hold RSS to 10%% of idle (sanitizer builds)")
    p.add_argument("--seed", type=int, default=13, help="random seed (default 13)")
    p.add_argument("--keep-log", action="store_true", help="keep hearthd's log and config")
    p.add_argument("--kinds", type=lambda v: v.split(","), default=None,
                   help="garbage kinds to send, comma separated (default all)")
    p.add_argument("--log-level", default="info", help="hearthd's [log] level (default info)")
    args = p.parse_args()
    if args.seconds < 3 * args.header_timeout:
        p.error("--seconds must be at least 3 x --header-timeout")
    return args


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need or soft == resource.RLIM_INFINITY:
        return None
    if hard != resource.RLIM_INFINITY and hard < need:
        return f"this process may open {hard} files (ulimit -Hn), {need} needed"
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return None


def main():
    args = parse_args()
    need = args.idle + args.clients + args.slow + args.garbage + 256
    if err := raise_nofile(need):
        sys.exit(f"soak.py: {err}")
    tmp = tempfile.mkdtemp(prefix="hearth-soak-")
    d = Daemon(args, tmp)
    checks, report = [], {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "args": vars(args)}

    def watchdog(*_):
        if d.proc and d.proc.poll() is None:
            d.proc.kill()
        sys.stderr.write(f"soak.py: not done within {args.seconds + 60:g} s; hearthd killed, "
                         f"log in {d.log}\n")
        os._exit(2)
    signal.signal(signal.SIGALRM, watchdog)
    signal.alarm(int(args.seconds) + 60)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rc = 2
    try:
        rc = asyncio.run(soak(args, d, checks, report))
    except KeyboardInterrupt:
        rc = 130
    finally:
        status = d.stop(12)
        signal.alarm(0)
        if rc in (0, 1) and status is not None:
            checks.append(("hearthd stops on SIGTERM with status 0", status == 0, f"status {status}"))
            reports = re.findall(r"(ERROR: \w+Sanitizer.*|runtime error: .*)", d.log_text())
            checks.append(("no sanitizer report in its log", not reports,
                           "; ".join(reports[:3]) or "none"))
    if rc in (0, 1):
        summarize(args, report, checks)
        rc = 0 if all(ok for _, ok, _ in checks) else 1
    keep = rc != 0 or args.keep_log
    if keep:
        print(f"hearthd's log and config kept in {tmp}", file=sys.stderr)
    else:
        for name in os.listdir(tmp):
            os.remove(os.path.join(tmp, name))
        os.rmdir(tmp)
    sys.exit(rc)


if __name__ == "__main__":
    main()
