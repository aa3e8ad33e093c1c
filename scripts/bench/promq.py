#!/usr/bin/env python3
"""What happened between two scrapes of a Prometheus text endpoint.

  promq.py quantile BEFORE AFTER METRIC Q [LABEL=VALUE ...]
      The Q-quantile (0..1) of histogram METRIC over the observations made
      between the two scrapes: the difference of its _bucket counters, the
      series matching every LABEL=VALUE summed by `le` (PromQL's
      `sum by (le)`), interpolated as histogram_quantile() does. Prints the
      value in seconds, "nan" when nothing was observed, or "nolabel" when
      no series of METRIC carries one of the LABELs at all.
  promq.py count BEFORE AFTER METRIC [LABEL=VALUE ...]
      The histogram's observation count (_count) between the two scrapes.
  promq.py mean BEFORE AFTER METRIC [LABEL=VALUE ...]
      The mean of the histogram's observations between the two scrapes
      (_sum over _count, exact where a quantile interpolates in a bucket);
      "nan" when nothing was observed.
  promq.py delta BEFORE AFTER METRIC BY [LABEL=VALUE ...]
      The increase of counter METRIC, summed by label BY: one line
      "VALUE INCREASE" per value of BY, in the order of the AFTER scrape.

BEFORE may be /dev/null (or an empty file): everything counts.
Only the standard library; no Prometheus needed.
"""

import math
import re
import sys

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(path):
    """[(name, {label: value}, float)] of every sample line."""
    samples = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            if not m:
                continue
            labels = dict(_LABEL.findall(m.group(2) or ""))
            try:
                value = float(m.group(3))
            except ValueError:
                continue
            samples.append((m.group(1), labels, value))
    return samples


def matches(labels, wanted):
    return all(labels.get(k) == v for k, v in wanted.items())


def parse_wanted(args):
    wanted = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            sys.exit("promq: expected LABEL=VALUE, got %r" % arg)
        wanted[key] = value.strip('"')
    return wanted


def series_sum(samples, name, wanted, by):
    """{value of label `by`: sum} over the series of `name` matching."""
    sums = {}
    for n, labels, value in samples:
        if n == name and matches(labels, wanted):
            key = labels.get(by, "")
            sums[key] = sums.get(key, 0.0) + value
    return sums


def le_value(text):
    return math.inf if text == "+Inf" else float(text)


def quantile(q, buckets):
    """histogram_quantile(q) over [(upper bound, cumulative count)]."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][0] != math.inf:
        return math.nan
    total = buckets[-1][1]
    if total <= 0:
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    rank = q * total
    for i, (upper, count) in enumerate(buckets):
        if count >= rank:
            break
    if upper == math.inf:  # in the +Inf bucket: the highest finite bound
        return buckets[-2][0] if len(buckets) > 1 else math.nan
    lower, below = (0.0, 0.0) if i == 0 else buckets[i - 1]
    if i == 0 and upper <= 0:
        return upper
    if count == below:
        return upper
    return lower + (upper - lower) * (rank - below) / (count - below)


def main(argv):
    if len(argv) < 5 or argv[1] not in ("quantile", "count", "mean",
                                          "delta"):
        sys.exit(__doc__)
    command, before_path, after_path, metric = argv[1:5]
    before, after = parse(before_path), parse(after_path)
    if command == "quantile":
        if len(argv) < 6:
            sys.exit(__doc__)
        q = float(argv[5])
        wanted = parse_wanted(argv[6:])
        bucket = metric + "_bucket"
        has_labels = any(n == bucket and all(k in l for k in wanted)
                         for n, l, _ in after)
        if not has_labels:
            print("nolabel")
            return
        now = series_sum(after, bucket, wanted, "le")
        then = series_sum(before, bucket, wanted, "le")
        buckets = [(le_value(le), now[le] - then.get(le, 0.0)) for le in now]
        print("%.6g" % quantile(q, buckets))
    elif command == "count":
        wanted = parse_wanted(argv[5:])
        now = series_sum(after, metric + "_count", wanted, "")
        then = series_sum(before, metric + "_count", wanted, "")
        print("%d" % (now.get("", 0.0) - then.get("", 0.0)))
    elif command == "mean":
        wanted = parse_wanted(argv[5:])
        counts = [series_sum(scrape, metric + "_count", wanted, "").get("", 0.0)
                  for scrape in (before, after)]
        sums = [series_sum(scrape, metric + "_sum", wanted, "").get("", 0.0)
                for scrape in (before, after)]
        count = counts[1] - counts[0]
        print("%.6g" % ((sums[1] - sums[0]) / count) if count > 0 else "nan")
    else:
        if len(argv) < 6:
            sys.exit(__doc__)
        by = argv[5]
        wanted = parse_wanted(argv[6:])
        now = series_sum(after, metric, wanted, by)
        then = series_sum(before, metric, wanted, by)
        for key, value in now.items():
            print("%s %d" % (key or "-", value - then.get(key, 0.0)))


if __name__ == "__main__":
    main(sys.argv)
