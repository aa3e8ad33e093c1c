#!/usr/bin/env bash
# memory_allocators.sh: which malloc gives memory back after a burst of
# large calls? The burst of memory.sh (64 concurrent 4096 x 4096 blurs,
# --max_inflight_bytes=512Mi, 2 workers), once per allocator and round, the
# rounds interleaved so that a slow phase of a shared machine hits every
# allocator alike:
#
#   glibc              glibc's malloc as it is
#   glibc+trim         the same, plus malloc_trim(0) once a second (an
#                      LD_PRELOAD shim built here: the most a trim can give)
#   jemalloc           Debian's libjemalloc2, LD_PRELOAD, its defaults
#   jemalloc+bg        the same with MALLOC_CONF=background_thread:true,
#                      dirty_decay_ms:1000,muzzy_decay_ms:0 (what
#                      compute-server is linked with, server/jemalloc_conf.cc)
#   mimalloc           Debian's libmimalloc2.0, LD_PRELOAD, its defaults
#   mimalloc+decommit  the same with MIMALLOC_RESET_DELAY=0,
#                      MIMALLOC_SEGMENT_DECOMMIT_DELAY=0,
#                      MIMALLOC_ABANDONED_PAGE_DECOMMIT=1
#   as-built           $COMPUTE_SERVER as it is (build/server/compute-server,
#                      linked with jemalloc and the settings of jemalloc+bg
#                      unless built with -DCOMPUTE_MALLOC=glibc)
#
# All but as-built run on a compute-server built with glibc's malloc (the
# preloaded allocator replaces it): $GLIBC_SERVER, by default build/glibc/
# (configured with -DCOMPUTE_MALLOC=glibc and built here, compute-server
# only, every run: see below). Reported per allocator, medians over the rounds: RSS idle, peak,
# when the queue is empty, MEMORY_SETTLE (10) s later, and the ratios of
# those to idle and of peak and settled RSS to glibc's; the calls that were
# accepted (a faster or leaner server accepts more of the burst, which raises
# its peak).
#
#   scripts/bench/memory_allocators.sh
#   ALLOCATORS_ROUNDS=1 ALLOCATORS="glibc jemalloc+bg" scripts/bench/memory_allocators.sh
#
# Environment (defaults): ALLOCATORS_ROUNDS (3; BENCH_QUICK=1: 1),
# ALLOCATORS (all of the above), GLIBC_SERVER, and memory.sh's MEMORY_*.
set -euo pipefail
BENCH_NAME=memory_allocators
# shellcheck source=scripts/bench/lib.sh
source "$(dirname "$0")/lib.sh"

ROUNDS=${ALLOCATORS_ROUNDS:-$(bench_default 3 1)}
read -r -a NAMES <<<"${ALLOCATORS:-glibc glibc+trim jemalloc jemalloc+bg mimalloc mimalloc+decommit as-built}"
if ! [[ $ROUNDS =~ ^[0-9]+$ ]] || ((ROUNDS < 1 || ROUNDS > 20)); then
  bench_die "ALLOCATORS_ROUNDS must be 1..20"
fi
libdir=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
JEMALLOC=$libdir/libjemalloc.so.2
MIMALLOC=$libdir/libmimalloc.so.2

# Built every run, not only when missing (nothing to do when it is up to
# date): an old binary would compare an old version of the code with the
# as-built one.
GLIBC_SERVER=${GLIBC_SERVER:-$BUILD/glibc/server/compute-server}
if [[ $GLIBC_SERVER == "$BUILD/glibc/server/compute-server" ]]; then
  echo "$BENCH_NAME: building compute-server with glibc's malloc in $BUILD/glibc" >&2
  if [[ ! -f $BUILD/glibc/CMakeCache.txt ]]; then
    generator=()
    command -v ninja >/dev/null && generator=(-G Ninja)
    cmake -S "$BENCH_ROOT" -B "$BUILD/glibc" "${generator[@]}" \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOMPUTE_MALLOC=glibc \
      -DCOMPUTE_BUILD_TESTS=OFF >/dev/null
  fi
  cmake --build "$BUILD/glibc" -j "$(nproc)" --target compute-server >/dev/null
fi

# The trim shim: a thread that calls malloc_trim(0) once a second.
shim=$bench_tmp/trim_shim.so
cat >"$bench_tmp/trim_shim.c" <<'C'
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>
static void* Trim(void* unused) {
  (void)unused;
  for (;;) {
    sleep(1);
    malloc_trim(0);
  }
  return 0;
}
__attribute__((constructor)) static void Start(void) {
  pthread_t thread;
  if (pthread_create(&thread, 0, Trim, 0) == 0) pthread_detach(thread);
}
C
cc -O2 -shared -fPIC -o "$shim" "$bench_tmp/trim_shim.c" -lpthread ||
  bench_die "could not build the malloc_trim shim (cc)"

# preload_of NAME / env_of NAME: how memory.sh runs the server for NAME.
preload_of() {
  case $1 in
    glibc | as-built) echo "" ;;
    glibc+trim) echo "$shim" ;;
    jemalloc | jemalloc+bg) echo "$JEMALLOC" ;;
    mimalloc | mimalloc+decommit) echo "$MIMALLOC" ;;
    *) bench_die "unknown allocator $1" ;;
  esac
}
env_of() {
  case $1 in
    jemalloc+bg) echo "MALLOC_CONF=background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0" ;;
    mimalloc+decommit) echo "MIMALLOC_RESET_DELAY=0 MIMALLOC_SEGMENT_DECOMMIT_DELAY=0 MIMALLOC_ABANDONED_PAGE_DECOMMIT=1" ;;
    *) echo "" ;;
  esac
}
for name in "${NAMES[@]}"; do
  preload=$(preload_of "$name")
  [[ -z $preload || -f $preload ]] ||
    bench_die "$name: $preload not found (scripts/install-deps.sh installs libjemalloc-dev; apt-get install libmimalloc-dev)"
done

results=$bench_tmp/results.txt
: >"$results"
for ((round = 1; round <= ROUNDS; round++)); do
  for name in "${NAMES[@]}"; do
    echo "$BENCH_NAME: round $round/$ROUNDS: $name" >&2
    line=$bench_tmp/line.txt
    rm -f "$line"
    server=$GLIBC_SERVER
    [[ $name != as-built ]] || server=$COMPUTE_SERVER
    COMPUTE_SERVER=$server MEMORY_PRELOAD=$(preload_of "$name") \
      MEMORY_SERVER_ENV=$(env_of "$name") MEMORY_RESULT=$line \
      timeout --foreground 300 "$BENCH_HERE/memory.sh" >"$bench_tmp/$name.$round.log" 2>&1 ||
      bench_die "memory.sh failed for $name: $(tail -3 "$bench_tmp/$name.$round.log")"
    echo "$name $(cat "$line")" >>"$results"
  done
done

echo "## memory_allocators: the burst of memory.sh, $ROUNDS round(s), medians"
echo
echo "Machine: nproc = $(nproc), CPU: $(grep -m1 'model name' /proc/cpuinfo |
  cut -d: -f2- | sed 's/^ *//')"
echo
python3 - "$results" "${MEMORY_CALLS:-64}" "${NAMES[@]}" <<'PY'
import statistics, sys
path, calls, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = {}
for line in open(path):
    f = line.split()
    rows.setdefault(f[0], []).append([float(x) for x in f[1:]])
def med(name, i):
    return statistics.median(r[i] for r in rows[name])
mib = lambda kib: "%.0f MiB" % (kib / 1024)
base = "glibc" if "glibc" in rows else names[0]
print("| malloc | idle | peak | queue empty | settled | settled / idle | "
      "peak / %s's | settled / %s's | back within 20%% of idle | calls OK |"
      % (base, base))
print("|---|---|---|---|---|---|---|---|---|---|")
for name in names:
    idle, peak, after, settled = (med(name, i) for i in range(4))
    backs = [r[4] for r in rows[name]]
    back = ("%.1f s" % statistics.median(backs) if all(b >= 0 for b in backs)
            else "no (%d of %d rounds)" % (sum(b >= 0 for b in backs), len(backs)))
    print("| %s | %s | %s | %s | %s | %.2fx | %.2fx | %.2fx | %s | %.0f of %.0f |"
          % (name, mib(idle), mib(peak), mib(after), mib(settled),
             settled / idle, peak / med(base, 1), settled / med(base, 3),
             back, med(name, 5), calls))
PY
