#!/usr/bin/env python3
"""load.py - streaming load on an OpenAI-compatible server, or hearthd
against llama-server side by side

What it measures, for each concurrency level C: C clients at once, each
sending K streamed /v1/chat/completions requests back to back. Every request
asks for N tokens (--bias suppresses end-of-sequence so that it gets all N)
with a prompt of about P words that differs from the first word on, so no
request reuses another's prefix cache. Figures per level:

  aggregate t/s  completion tokens of all successful requests / wall time of
                 the level (first request sent to last stream ended; prompt
                 processing and queueing included)
  request t/s    median over requests of (completion_tokens - 1) /
                 (stream end - first content token): the decode rate one
                 client sees once its first token has arrived
  TTFT           request sent -> first non-empty delta.content (p50, p95)
  delta gap      the longest wait between two content deltas of a request
                 (a stream stalled while the server did something else)
  errors         non-200 status, error events, streams that end without
                 [DONE], connection failures and timeouts

--ttft-under-load adds, per level, C-1 long background streams and then
--probes short requests one after another; their TTFT p50 is "TTFT of a short
request with C-1 streams running" (C = 1: alone).

Servers: --url for one already running, or --hearthd/--llama-server to start
them here (once, stopped at the end). With both, every round runs each level
on both, alternating which goes first, and the summary gives the medians
over rounds and the median of each round's ratio hearth/llama. The machines
are shared: only ratios taken in one run mean anything, and the "server CPU"
of each line (CPU seconds of a server started here / wall seconds) falls
below the thread count when something else took the cores.

Only the Python 3 standard library: raw HTTP/1.1 over asyncio streams,
chunked transfer encoding and server-sent events decoded here.
"""
import argparse
import asyncio
import ctypes
import itertools
import json
import math
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import zlib
from dataclasses import asdict, dataclass, field

WORDS = """river mountain lantern quiet orange harbor thunder pencil garden
silver morning window travel basket candle forest yellow market ocean bridge
whisper kitchen winter meadow copper village shadow ladder planet button
summer feather island engine marble pocket castle violet rabbit blanket
journey mirror valley rocket saddle cotton anchor velvet hollow tunnel
puzzle orchard compass lemon timber canyon helmet ribbon glacier wagon""".split()

SETTLE_S = 0.5  # after cancelling background streams: time for the server to free the slots
PROCS = []      # servers started here, stopped on any exit
now = time.monotonic


def make_prompt(n_words, tag):
    """About n_words tokens of English, different from the first word for each tag."""
    seed, words = zlib.crc32(tag.encode()), []
    for _ in range(n_words):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        words.append(WORDS[(seed >> 8) % len(WORDS)])
    return " ".join(words).capitalize() + ". Continue the story."


# ---------------------------------------------------------------- HTTP / SSE

async def open_request(url, method, path, body=None, api_key=None):
    """Send one request (Connection: close); return status, headers, reader, writer."""
    u = urllib.parse.urlsplit(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port or 80)
    data = json.dumps(body).encode() if body is not None else b""
    head = [f"{method} {path} HTTP/1.1", f"Host: {u.netloc}", "Connection: close", "Accept: */*"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    if api_key:
        head.append(f"Authorization: Bearer {api_key}")
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ConnectionError(f"bad status line {status_line[:80]!r}")
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
    except BaseException:
        writer.close()
        raise
    return int(parts[1]), headers, reader, writer


async def body_chunks(headers, reader):
    """The body as it arrives, chunked transfer encoding decoded."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readline()
            if not size_line:
                raise ConnectionError("connection closed inside a chunked body")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            yield await reader.readexactly(size)
            await reader.readexactly(2)  # the chunk's CRLF
    elif "content-length" in headers:
        yield await reader.readexactly(int(headers["content-length"]))
    else:
        while chunk := await reader.read(65536):
            yield chunk


async def sse_events(chunks):
    """The data of each server-sent event; comments (': ping') are skipped."""
    buf, data = b"", []
    async for chunk in chunks:
        buf += chunk
        while (i := buf.find(b"\n")) >= 0:
            line, buf = buf[:i].rstrip(b"\r"), buf[i + 1:]
            if not line and data:
                yield "\n".join(data)
                data = []
            elif line.startswith(b"data:"):
                value = line[5:].decode()
                data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


async def fetch(url, path, api_key=None):
    """GET; return status and body."""
    status, headers, reader, writer = await open_request(url, "GET", path, None, api_key)
    try:
        return status, b"".join([c async for c in body_chunks(headers, reader)])
    finally:
        writer.close()


@dataclass
class Result:
    start: float                # request sent (monotonic seconds)
    first: float = None         # first non-empty delta.content
    end: float = None           # stream ended ([DONE], error or failure)
    tokens: int = 0             # usage.completion_tokens, else content deltas
    deltas: int = 0             # non-empty content deltas received
    max_gap: float = 0.0        # longest wait between two content deltas
    prompt_tokens: int = None   # from usage
    cached_tokens: int = None   # usage.prompt_tokens_details.cached_tokens
    error: str = None


async def chat(server, args, prompt, max_tokens, on_first=None):
    """One streamed chat completion, timed."""
    body = {"model": server.model, "stream": True, "max_tokens": max_tokens,
            "temperature": args.temperature, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": prompt}]}
    if args.bias:
        body["logit_bias"] = dict(args.bias)
    r, writer, usage, done, last = Result(start=now()), None, None, False, None
    try:
        async with asyncio.timeout(args.timeout):
            status, headers, reader, writer = await open_request(
                server.url, "POST", "/v1/chat/completions", body, args.api_key)
            if status != 200:
                text = b"".join([c async for c in body_chunks(headers, reader)])
                r.error = f"HTTP {status}: {text[:200].decode(errors='replace')}"
                return r
            async for ev in sse_events(body_chunks(headers, reader)):
                if done := ev.strip() == "[DONE]":
                    break
                obj = json.loads(ev)
                if obj.get("error"):
                    r.error = "error event: " + json.dumps(obj["error"])[:200]
                for choice in obj.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        t = now()
                        r.deltas += 1
                        r.max_gap, last = max(r.max_gap, t - (last or t)), t
                        if r.first is None:
                            r.first = t
                            if on_first:
                                on_first()
                usage = obj.get("usage") or usage
            if not done and not r.error:
                r.error = "stream ended without [DONE]"
    except TimeoutError:
        r.error = f"timeout after {args.timeout} s"
    except (OSError, EOFError, ValueError, asyncio.IncompleteReadError) as e:
        r.error = f"{type(e).__name__}: {e}"
    finally:
        r.end = now()
        if writer:
            writer.close()
    usage = usage or {}
    r.tokens = usage.get("completion_tokens", r.deltas)
    r.prompt_tokens = usage.get("prompt_tokens")
    r.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    return r


# ---------------------------------------------------------------- measurements

def pct(values, p):
    """Nearest-rank percentile; None for no values."""
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)] if v else None


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(reqs, t0, t1, max_tokens):
    ok = [r for r in reqs if not r.error]
    ttft = [r.first - r.start for r in ok if r.first is not None]
    rates = [(r.tokens - 1) / (r.end - r.first) for r in ok
             if r.first is not None and r.tokens > 1 and r.end > r.first]
    errors = [r.error for r in reqs if r.error]
    return {"wall_s": t1 - t0, "requests": len(reqs), "errors": len(errors),
            "error_samples": sorted(set(errors))[:3],
            "short": sum(r.tokens < max_tokens for r in ok),
            "tokens": sum(r.tokens for r in ok), "agg_tps": sum(r.tokens for r in ok) / (t1 - t0),
            "req_tps_p50": med(rates), "ttft_p50": pct(ttft, 50), "ttft_p95": pct(ttft, 95),
            "max_gap": max([r.max_gap for r in ok], default=None),
            "prompt_tokens": med([r.prompt_tokens for r in ok]),
            "raw": [dict(asdict(r), start=r.start - t0, end=r.end - t0,  # seconds from t0
                         first=r.first and r.first - t0) for r in reqs]}


async def run_level(server, args, level, rnd):
    """C clients, K requests each, back to back."""
    async def client(i):
        return [await chat(server, args, make_prompt(args.prompt_tokens, f"{rnd}.{level}.{i}.{k}"),
                           args.max_tokens) for k in range(args.requests)]
    t0 = now()
    per_client = await asyncio.gather(*(client(i) for i in range(level)))
    return summarize([r for rs in per_client for r in rs], t0, now(), args.max_tokens)


async def run_ttft_under_load(server, args, level, rnd):
    """C-1 long streams running; short probe requests one after another."""
    started, bg_errors = [asyncio.Event() for _ in range(level - 1)], []

    async def background(i):
        for n in itertools.count():  # until cancelled; a stream that ends is replaced at once
            tag = f"bg{rnd}.{level}.{i}.{n}"
            r = await chat(server, args, make_prompt(args.prompt_tokens, tag), args.long_tokens,
                           on_first=started[i].set)
            if r.error:
                bg_errors.append(r.error)
                started[i].set()
                await asyncio.sleep(0.1)

    tasks = [asyncio.create_task(background(i)) for i in range(level - 1)]
    try:
        try:
            async with asyncio.timeout(args.timeout):
                await asyncio.gather(*(e.wait() for e in started))
        except TimeoutError:
            bg_errors.append("background streams gave no token in time")
        t0, probes = now(), []
        for j in range(args.probes):
            prompt = make_prompt(args.probe_prompt_tokens, f"p{rnd}.{level}.{j}")
            probes.append(await chat(server, args, prompt, args.probe_tokens))
        m = summarize(probes, t0, now(), args.probe_tokens)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    m["background_errors"] = len(bg_errors)  # shown, not counted in "errors"
    m["error_samples"] += sorted(set(f"background: {e}" for e in bg_errors))[:3]
    await asyncio.sleep(SETTLE_S)
    return m


# ---------------------------------------------------------------- servers

@dataclass
class Server:
    name: str
    url: str
    log: str = None
    cmd: list = field(default_factory=list)
    pid: int = None
    model: str = None

    def cpu_seconds(self):
        """CPU time the server process has used (Linux /proc); None when unknown."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, TypeError, IndexError, ValueError):
            return None


def die_with_parent():
    """In the child: SIGTERM when this script dies, even by SIGKILL (Linux prctl)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


async def start_server(name, cmd, ready, args, logdir):
    """Start cmd, its output to a log file; poll ready(log) for its URL until the deadline."""
    log = os.path.join(logdir, f"{name}.log")
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=die_with_parent)
    PROCS.append(proc)
    deadline = now() + args.start_timeout
    while now() < deadline and proc.poll() is None:
        if url := await ready(log):
            return Server(name, url, log, cmd, proc.pid)
        await asyncio.sleep(0.1)
    with open(log, "rb") as f:
        tail = f.read()[-2000:].decode(errors="replace")
    sys.exit(f"load.py: {cmd[0]} not ready (exit status {proc.poll()}); log {log}:\n{tail}")


async def start_hearthd(args, logdir):
    async def ready(log):  # hearthd logs the port it bound
        with open(log, "rb") as f:
            m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", f.read())
        return m and f"http://127.0.0.1:{int(m[1])}"
    cmd = [args.hearthd, "--model", args.model, "--host", "127.0.0.1", "--port", "0",
           "--parallel", str(args.slots), "--context", str(args.ctx),
           "--threads", str(args.threads)] + shlex.split(args.hearthd_args)
    return await start_server("hearth", cmd, ready, args, logdir)


async def start_llama(args, logdir):
    with socket.socket() as s:  # a free port: llama-server cannot report one it picked
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    async def ready(_):  # GET /health is 503 while the model loads
        try:
            return url if (await fetch(url, "/health"))[0] == 200 else None
        except OSError:
            return None
    cmd = [args.llama_server, "-m", args.model, "--host", "127.0.0.1", "--port", str(port),
           "-np", str(args.slots), "-t", str(args.threads),
           "-c", str(args.ctx * args.slots)] + shlex.split(args.llama_args)
    return await start_server("llama", cmd, ready, args, logdir)


def stop_servers():
    for p in PROCS:
        if p.poll() is None:
            p.terminate()
    for p in PROCS:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ---------------------------------------------------------------- report

def fmt(v, spec=".1f", suffix=""):
    return "-" if v is None else f"{v:{spec}}{suffix}"


def print_line(s, m):
    head = f"round {m['round']} {s.name:6} C={m['level']:<3}"
    ttft = f"TTFT p50 {fmt(m['ttft_p50'], '.3f')} s p95 {fmt(m['ttft_p95'], '.3f')} s"
    errors = f"{m['errors']}/{m['requests']} errors"
    if m["kind"] == "load":
        print(f"{head} load {fmt(m['agg_tps'], '6.1f')} t/s agg, {fmt(m['req_tps_p50'], '5.1f')} "
              f"t/s req, {ttft}, gap {fmt(m['max_gap'], '.2f')} s, {errors}, prompt "
              f"{fmt(m['prompt_tokens'], '.0f')} tok, server CPU {fmt(m['server_cpu'], '.0%')}",
              flush=True)
    else:
        print(f"{head} {m['level'] - 1} streams running, probe {ttft}, {errors}", flush=True)
    for e in m["error_samples"]:
        print(f"    error: {e}")
    if m["short"]:
        print(f"    {m['short']} request(s) ended before max_tokens (see --bias)")


def report(results, servers, args):
    """One block per level: medians over rounds, and the median of hearth/llama per round."""
    for m in results:  # scaling: aggregate at C / aggregate at 1, same server and round
        base = [b["agg_tps"] for b in results if (b["kind"], b["level"], b["server"], b["round"])
                == ("load", 1, m["server"], m["round"])]
        m["scale"] = m["agg_tps"] / base[0] if m["kind"] == "load" and base and base[0] else None
    rows = [("aggregate t/s", "load", "agg_tps", ".1f", ""),
            ("aggregate / C=1", "load", "scale", ".2f", "x"),
            ("request t/s p50", "load", "req_tps_p50", ".1f", ""),
            ("TTFT p50 s", "load", "ttft_p50", ".3f", ""),
            ("TTFT p95 s", "load", "ttft_p95", ".3f", ""),
            ("longest delta gap s", "load", "max_gap", ".2f", "")]
    if args.ttft_under_load:
        rows.append(("probe TTFT p50 s", "ttft", "ttft_p50", ".3f", ""))
    names = [s.name for s in servers]
    pair = "hearth" in names and "llama" in names

    def figures(name, level, kind, key):  # {round: value}
        return {m["round"]: m[key] for m in results
                if (m["server"], m["level"], m["kind"]) == (name, level, kind)}

    print(f"\nmedians over {args.rounds} round(s)" + (
        "; hearth/llama: median of the rounds' ratios\n(t/s: above 1 = hearth faster; "
        "TTFT: below 1 = hearth faster)" if pair else ""))
    for c in args.concurrency:
        print(f"\n{f'C={c}':<30}" + "".join(f"{n:>11}" for n in names)
              + (f"{'hearth/llama':>14}" if pair else ""))
        for title, kind, key, spec, sfx in rows:
            if key == "scale" and (c == 1 or 1 not in args.concurrency):
                continue
            if kind == "ttft":
                title += " (alone)" if c == 1 else f" ({c - 1} running)"
            line = f"{title:<30}" + "".join(
                f"{fmt(med(figures(n, c, kind, key).values()), spec, sfx):>11}" for n in names)
            if pair:
                h, l = figures("hearth", c, kind, key), figures("llama", c, kind, key)
                ratio = med(h[r] / l[r] for r in h if h[r] is not None and l.get(r))
                line += f"{fmt(ratio, '.2f', 'x'):>14}"
            print(line)
        errors = [sum(figures(n, c, k, "errors").values()) for n in names for k in ("load", "ttft")]
        print(f"{'errors, all rounds':<30}" + "".join(
            f"{a + b:>11}" for a, b in zip(errors[::2], errors[1::2])))


# ---------------------------------------------------------------- main

async def main(args, logdir):
    servers = [Server("target", args.url.rstrip("/"))] if args.url else []
    if args.hearthd:
        servers.append(await start_hearthd(args, logdir))
    if args.llama_server:
        servers.append(await start_llama(args, logdir))
    for s in servers:
        status, body = await fetch(s.url, "/v1/models", args.api_key)
        if status != 200:
            sys.exit(f"load.py: {s.url}/v1/models: HTTP {status}: {body[:200]!r}")
        s.model = json.loads(body)["data"][0]["id"]
        w = await chat(s, args, make_prompt(args.prompt_tokens, "warm-up"), 8)
        print(f"{s.name}: {s.url} model {s.model}" + (f"\n    {shlex.join(s.cmd)}" if s.cmd else "")
              + (f"\n    warm-up failed: {w.error}" if w.error else ""), flush=True)

    results, kinds = [], [("load", run_level)]
    if args.ttft_under_load:
        kinds.append(("ttft", run_ttft_under_load))
    for rnd in range(1, args.rounds + 1):
        for c in args.concurrency:
            for kind, run in kinds:
                for s in servers if rnd % 2 else servers[::-1]:
                    cpu0, t0 = s.cpu_seconds(), now()
                    m = await run(s, args, c, rnd)
                    cpu1, wall = s.cpu_seconds(), now() - t0
                    cpu = (cpu1 - cpu0) / wall if None not in (cpu0, cpu1) else None
                    m.update(server=s.name, round=rnd, level=c, kind=kind, server_cpu=cpu)
                    print_line(s, m)
                    results.append(m)
    report(results, servers, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "servers": [asdict(s) for s in servers],
                       "measurements": results}, f, indent=1)
        print(f"\nraw figures: {args.json}")


def parse_args():
    doc = __doc__.split("\n\n")
    p = argparse.ArgumentParser(description=doc[0].replace("\n", " ") + ".",
                                epilog="\n\n".join(doc[1:-1]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument_group("targets (at least one)").add_argument
    a("--url", help="an already running server, e.g. http://127.0.0.1:8080")
    a("--hearthd", metavar="PATH", help="start this hearthd")
    a("--llama-server", metavar="PATH", help="start this llama-server")
    a("--model", metavar="FILE.gguf", help="the model for the servers started here")
    a("--threads", type=int, default=2, help="compute threads (default 2)")
    a("--slots", type=int, default=8, help="sequences at once (default 8)")
    a("--ctx", type=int, default=4096,
      help="context per slot (default 4096; llama-server gets -c CTX*SLOTS)")
    a("--hearthd-args", default="", metavar="ARGS", help="more hearthd flags, one string")
    a("--llama-args", default="", metavar="ARGS", help="more llama-server flags, one string")
    a("--start-timeout", type=float, default=120, metavar="S", help="(default 120)")
    a("--api-key", help="sent as 'Authorization: Bearer KEY'")
    a = p.add_argument_group("load").add_argument
    a("--concurrency", default="1,4,8", metavar="C,C..", help="levels (default 1,4,8)")
    a("--requests", type=int, default=2, metavar="K", help="per client per level (default 2)")
    a("--max-tokens", type=int, default=128, metavar="N", help="per request (default 128)")
    a("--prompt-tokens", type=int, default=128, metavar="P",
      help="prompt words, about as many tokens, before the chat template (default 128)")
    a("--temperature", type=float, default=0.0, help="(default 0)")
    a("--bias", action="append", default=[], metavar="TOKEN_ID:-100",
      help="logit_bias entry, repeatable: suppress end-of-sequence "
           "(Qwen2.5: --bias 151643:-100 --bias 151645:-100)")
    a("--rounds", type=int, default=3, metavar="R", help="(default 3)")
    a("--timeout", type=float, default=600, metavar="S", help="per request (default 600)")
    a = p.add_argument_group("TTFT under load").add_argument
    a("--ttft-under-load", action="store_true",
      help="per level C, TTFT of probes with C-1 long streams running")
    a("--probes", type=int, default=5, help="probe requests per level (default 5)")
    a("--probe-tokens", type=int, default=2, metavar="N", help="max_tokens of a probe (default 2)")
    a("--probe-prompt-tokens", type=int, default=16, metavar="P", help="(default 16)")
    a("--long-tokens", type=int, default=1024, metavar="N",
      help="max_tokens of a background stream; must fit the context (default 1024)")
    p.add_argument("--json", metavar="FILE", help="also write every figure and request here")
    p.add_argument("--logs", metavar="DIR", help="keep the started servers' logs here")
    args = p.parse_args()
    if not (args.url or args.hearthd or args.llama_server):
        p.error("give --url, --hearthd or --llama-server")
    if (args.hearthd or args.llama_server) and not args.model:
        p.error("--hearthd and --llama-server need --model")
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",")]
        args.bias = [(tok.strip(), float(val)) for tok, val in (b.split(":") for b in args.bias)]
    except ValueError as e:
        p.error(f"bad --concurrency or --bias: {e}")
    if min(args.concurrency) < 1:
        p.error("--concurrency levels must be at least 1")
    return args


if __name__ == "__main__":
    args = parse_args()
    logdir = args.logs or tempfile.mkdtemp(prefix="hearth-load-")
    os.makedirs(logdir, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops the servers
    clean = False
    try:
        asyncio.run(main(args, logdir))
        clean = True
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        stop_servers()
        if clean and not args.logs:
            for name in os.listdir(logdir):
                os.remove(os.path.join(logdir, name))
            os.rmdir(logdir)
        elif PROCS:
            print(f"server logs kept in {logdir}", file=sys.stderr)
