#!/bin/sh
# make install into a scratch DESTDIR from the build tree this suite runs in,
# then check the installed tree:
#  - binaries, the documented config, both units and every page of docs/
#    where the configured paths put them;
#  - the service's ExecStart names the installed hearthd and the config file
#    that hearthd reads by default (hearthd --help says which);
#  - the units pass systemd-analyze verify, and the hardening's exposure
#    (systemd-analyze security) stays at or under 2.0, as docs/hearthd.md says;
#  - the installed hearthd with the installed config serves a model;
#  - sd_notify: READY=1, WATCHDOG=1 pings at half of $WATCHDOG_USEC,
#    STOPPING=1 at SIGTERM, read from a NOTIFY_SOCKET this suite listens on;
#  - socket activation: hearthd under systemd-socket-activate answers on the
#    socket it was given (it is told --port 0, so a daemon that bound its own
#    socket instead would leave the request unanswered).
# The parts that need the model, python3, curl, systemd-analyze or
# systemd-socket-activate say SKIP when those are missing.
#
# The install uses the paths configure chose (make install prefix=/usr
# sysconfdir=/etc rebuilds hearthd with those paths: right for a packager,
# wrong in the middle of a test run that other suites share the binary of).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/hearthd.sh"
builddir=${HEARTH_BUILDDIR:-$(pwd)}
srcdir=${HEARTH_SRCDIR:-$here/..}
data=${HEARTH_TEST_DATA:-$here/../../shared}
model=$data/models/stories260K.gguf
scratch_new install
fail() { echo "FAIL: $*"; scratch_end 1; }
skip() { echo "SKIP (part): $*"; }
have() { command -v "$1" >/dev/null 2>&1; }
dest=$tmp/root

# MAKEFLAGS of the make check that runs this suite would carry its TESTS=.
MAKEFLAGS= make -s -C "$builddir" install DESTDIR="$dest" >"$tmp/install.log" 2>&1 ||
    fail "make install DESTDIR=$dest (install.log)"

# ---------------------------------------------------------------- the tree
hearthd_bin=$(find "$dest" -path '*/sbin/hearthd' -type f)
hearth_bin=$(find "$dest" -path '*/bin/hearth' -type f)
[ -x "$hearthd_bin" ] || fail "no sbin/hearthd installed"
[ -x "$hearth_bin" ] || fail "no bin/hearth installed"
unit=$(find "$dest" -path '*/systemd/system/hearthd.service' -type f)
[ -n "$unit" ] || fail "no hearthd.service installed (configured --with-systemdsystemunitdir=no?)"
[ -f "$(dirname "$unit")/hearthd.socket" ] || fail "no hearthd.socket beside $unit"
grep -q '@[a-z]*@' "$unit" && fail "unsubstituted @...@ in $unit: $(grep '@[a-z]*@' "$unit")"

# ExecStart=SBINDIR/hearthd --config SYSCONFDIR/hearth/hearth.conf
exec_line=$(sed -n 's/^ExecStart=//p' "$unit")
exe=${exec_line%% *}
conf=$(echo "$exec_line" | sed -n 's/.* --config \([^ ]*\).*/\1/p')
[ "$dest$exe" = "$hearthd_bin" ] || fail "ExecStart names $exe, hearthd is at ${hearthd_bin#$dest}"
[ -n "$conf" ] || fail "ExecStart has no --config: $exec_line"
[ -f "$dest$conf" ] || fail "the unit's config $conf is not installed"
cmp -s "$dest$conf" "$srcdir/conf/hearth.conf" || fail "$conf differs from conf/hearth.conf"
default=$("$hearthd_bin" --help | sed -n 's/.*configuration file (INI); default \([^ ]*\) when.*/\1/p')
[ "$default" = "$conf" ] ||
    fail "hearthd's default config is '$default', the unit passes '$conf'"
[ "$(dirname "$(dirname "$hearth_bin")")" = "$(dirname "$(dirname "$hearthd_bin")")" ] ||
    fail "hearth and hearthd under different prefixes: $hearth_bin $hearthd_bin"

# Documentation=file://DOCDIR/docs/hearthd.md; README.md and docs/ below it.
docdir=$(sed -n 's|^Documentation=file://\(.*\)/docs/hearthd\.md$|\1|p' "$unit")
[ -n "$docdir" ] || fail "no Documentation=file://.../docs/hearthd.md in the unit"
cmp -s "$dest$docdir/README.md" "$srcdir/README.md" || fail "README.md not in $docdir"
pages=$(cd "$srcdir" && find docs -name '*.md' | sort)
for p in $pages; do
    cmp -s "$dest$docdir/$p" "$srcdir/$p" ||
        fail "$p not installed in $docdir (list it in nobase_dist_doc_DATA, Makefile.am)"
done
echo "ok: installed tree ($(echo "$pages" | wc -l) doc pages; ExecStart $exec_line)"

# ---------------------------------------------------------------- systemd-analyze
if have systemd-analyze; then
    # verify checks that ExecStart is executable: point it into DESTDIR.
    mkdir "$tmp/units"
    sed "s|^ExecStart=|ExecStart=$dest|" "$unit" > "$tmp/units/hearthd.service"
    cp "$(dirname "$unit")/hearthd.socket" "$tmp/units/"
    systemd-analyze verify "$tmp/units/hearthd.socket" "$tmp/units/hearthd.service" \
        >"$tmp/verify.log" 2>&1 || fail "systemd-analyze verify (verify.log)"
    # it exits 0 on unknown keys: any output is a finding
    [ -s "$tmp/verify.log" ] && fail "systemd-analyze verify: $(cat "$tmp/verify.log")"
    if systemd-analyze security --offline=yes "$unit" >"$tmp/security.log" 2>&1; then
        level=$(sed -n 's/.*Overall exposure level for hearthd.service: \([0-9.]*\).*/\1/p' \
            "$tmp/security.log")
        [ -n "$level" ] || fail "no exposure level in security.log"
        awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' ||
            fail "exposure $level > 2.0: $(grep '✗' "$tmp/security.log")"
        echo "ok: systemd-analyze verify; security exposure $level"
    else
        skip "systemd-analyze security --offline=yes unsupported: $(head -n 2 "$tmp/security.log")"
    fi
else
    skip "systemd-analyze missing"
fi

# ---------------------------------------------------------------- serving
if [ ! -f "$model" ]; then
    skip "$model missing (set HEARTH_TEST_DATA): the installed hearthd not started"
    scratch_end 0
fi
have curl || { skip "curl missing: the installed hearthd not started"; scratch_end 0; }

hearthd=$hearthd_bin
hearthd_start --config "$dest$conf" --model "$model"
curl -sf --max-time 30 "http://127.0.0.1:$port/health" >"$tmp/health.json" ||
    fail "GET /health on the installed hearthd"
grep -q '"loaded": *true' "$tmp/health.json" || fail "model not loaded: $(cat "$tmp/health.json")"
hearthd_stop
[ "$hearthd_status" -eq 0 ] || fail "installed hearthd exited $hearthd_status at SIGTERM"
echo "ok: the installed hearthd with the installed config serves /health"

systemd_built=no
grep -q '^#define HAVE_SYSTEMD 1' "$builddir/config.h" && systemd_built=yes

# ---------------------------------------------------------------- sd_notify
if [ "$systemd_built" = no ]; then
    skip "hearthd built without libsystemd: no sd_notify, no socket activation"
    scratch_end 0
fi
if have python3; then
    python3 - "$hearthd_bin" "$dest$conf" "$model" "$tmp/notify" >"$tmp/notify.log" 2>&1 <<'PY' ||
import os, select, signal, socket, subprocess, sys, time
exe, conf, model, path = sys.argv[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
env.pop("WATCHDOG_PID", None)
p = subprocess.Popen([exe, "--config", conf, "--model", model, "--port", "0"], env=env)
seen, pings, t_ready = [], [], None

def wait_for(pred, secs, what):
    deadline = time.monotonic() + secs
    while not pred():
        left = deadline - time.monotonic()
        if left <= 0 or p.poll() is not None:
            sys.exit("no %s (state messages: %r, exit %r)" % (what, seen, p.poll()))
        if select.select([s], [], [], left)[0]:
            for line in s.recv(4096).decode().split("\n"):
                if line:
                    seen.append(line)
                    if line == "WATCHDOG=1":
                        pings.append(time.monotonic())

wait_for(lambda: "READY=1" in seen, 30, "READY=1")
wait_for(lambda: len(pings) >= 3, 10, "three WATCHDOG=1 pings")
gaps = [b - a for a, b in zip(pings, pings[1:])]
# 400 ms timeout: a ping every 200 ms, never anywhere near the timeout
if max(gaps) >= 0.4:
    sys.exit("watchdog pings %r s apart, the timeout is 0.4 s" % gaps)
p.send_signal(signal.SIGTERM)
wait_for(lambda: "STOPPING=1" in seen, 10, "STOPPING=1")
if p.wait(timeout=30) != 0:
    sys.exit("hearthd exited %d" % p.returncode)
print("notify ok:", sorted(set(seen)), "pings %.0f ms apart" % (1000 * max(gaps)))
PY
        fail "sd_notify (notify.log): $(tail -n 3 "$tmp/notify.log")"
    echo "ok: READY=1, WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1"
else
    skip "python3 missing: sd_notify not checked"
fi

# ---------------------------------------------------------------- socket activation
if ! have systemd-socket-activate || ! have python3; then
    skip "systemd-socket-activate or python3 missing: socket activation not checked"
    scratch_end 0
fi
# A free port: bound and released by python3, then bound by
# systemd-socket-activate (which says so on stderr).
aport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
systemd-socket-activate -l "127.0.0.1:$aport" "$hearthd_bin" --config "$dest$conf" \
    --model "$model" --port 0 >"$tmp/activate.log" 2>&1 &
apid=$!
trap 'kill $apid 2>/dev/null' EXIT
for _ in $(seq 1 300); do
    grep -q "Listening on 127.0.0.1:$aport" "$tmp/activate.log" && break
    kill -0 $apid 2>/dev/null || fail "systemd-socket-activate exited (activate.log)"
    sleep 0.1
done
# The first connection starts hearthd, which then accepts it on the socket
# it was passed.
curl -sf --max-time 30 "http://127.0.0.1:$aport/health" >"$tmp/health2.json" ||
    fail "GET /health through the passed socket"
grep -q '"loaded": *true' "$tmp/health2.json" || fail "model not loaded: $(cat "$tmp/health2.json")"
grep -q "listening on the socket systemd passed, port $aport" "$tmp/activate.log" ||
    fail "hearthd did not say it serves the passed socket (activate.log)"
kill -TERM $apid
wait $apid
st=$?
[ $st -eq 0 ] || fail "socket-activated hearthd exited $st at SIGTERM"
echo "ok: socket activation (systemd-socket-activate, port $aport)"
scratch_end 0
