#!/usr/bin/env python3
"""The soak's trend rule (scripts/soak.sh): SAMPLES is a TSV of t (s),
rss_kib, fds, threads; samples before WARMUP seconds are dropped, the rest
split into thirds; a series fails when the mean of its last third exceeds
the mean of its first third by more than its tolerance (RSS 5% + 8 MiB,
fds 4, threads 4). The least-squares slope is printed beside it, for the
reader, not the verdict: one burst late in a short run moves a slope more
than it moves a mean. Exit 1 if any series fails.

usage: soak_trend.py SAMPLES WARMUP
"""
import sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n")[1:] if l]
warmup = int(sys.argv[2])
data = [(int(t), int(r), int(f), int(th)) for t, r, f, th in rows]
kept = [d for d in data if d[0] >= warmup]
if len(kept) < 6:
    print("soak: too few samples after the warm-up (%d)" % len(kept))
    sys.exit(1)
third = len(kept) // 3
first, last = kept[:third], kept[-third:]
failed = False
print("soak: %d samples, %d after the %d s warm-up" % (len(data), len(kept), warmup))
for i, name, tol in ((1, "rss_mib", lambda a: 0.05 * a + 8 * 1024),
                     (2, "fds", lambda a: 4), (3, "threads", lambda a: 4)):
    a = sum(d[i] for d in first) / len(first)
    b = sum(d[i] for d in last) / len(last)
    xs = [d[0] for d in kept]
    ys = [d[i] for d in kept]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs) or 1
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den
    scale = 1024.0 if i == 1 else 1.0
    ok = b <= a + tol(a)
    failed |= not ok
    print("  %-8s first third %9.1f  last third %9.1f  limit %9.1f  "
          "slope %+.3f/min  min %.1f max %.1f  %s" % (
              name, a / scale, b / scale, (a + tol(a)) / scale,
              slope * 60 / scale, min(ys) / scale, max(ys) / scale,
              "ok" if ok else "TRENDS UP"))
sys.exit(1 if failed else 0)
