# The two commands a new user needs: `make run` and `make test`.
# Every target that builds installs the dependencies first (a no-op when
# everything is present).
SHELL := /bin/bash
# Recipes fail on a failed command anywhere in a pipe.
.SHELLFLAGS := -o pipefail -c
# Deferred (=, not :=): looked up when a configure recipe runs, after
# `deps` has installed ninja, not when make reads this file (on a fresh
# machine the first build was configured for Unix Makefiles).
GENERATOR = $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
JOBS ?= $(shell nproc)
BUILD := build

.PHONY: deps build run test asan tsan thread-safety check-format bench \
	bench-e2e format \
	demo image test-image check-deploy fuzz soak clean

deps:
	@./scripts/install-deps.sh

# configure DIR EXTRA_CMAKE_ARGS
define configure
	@if [ ! -f $(1)/CMakeCache.txt ]; then cmake -S . -B $(1) $(GENERATOR) $(2); fi
endef

build: deps
	$(call configure,$(BUILD),-DCMAKE_BUILD_TYPE=RelWithDebInfo)
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/server/compute-server

demo: build
	./$(BUILD)/server/pool/compute-pool-demo

# A test that hangs fails after CTEST_TIMEOUT seconds instead of holding
# the run for ctest's default of 1,500 (the slowest tests take about 10 s
# in this build on 2 cores, a few times that under the sanitizers).
CTEST_TIMEOUT ?= 300

# ctest DIR ENVIRONMENT EXTRA_CTEST_ARGS. Tests write their files under
# DIR/test-tmp (gtest's TEST_TMPDIR), not a shared /tmp, so two checkouts
# or builds testing at once never write the same file.
define ctest
	@mkdir -p $(1)/test-tmp
	TEST_TMPDIR=$(abspath $(1))/test-tmp $(2) \
	  ctest --test-dir $(1) --output-on-failure -j $(JOBS) \
	  --timeout $(CTEST_TIMEOUT) $(3)
endef

test: build
	$(call ctest,$(BUILD))

# ASan + UBSan: every test. tests/lsan.supp: a leak in Debian's c-ares.
asan: deps
	$(call configure,build-asan,-DCMAKE_BUILD_TYPE=Debug -DCOMPUTE_SANITIZE=address)
	cmake --build build-asan -j $(JOBS)
	$(call ctest,build-asan,ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp UBSAN_OPTIONS=print_stacktrace=1)

# ThreadSanitizer: every test binary that does not link gRPC (which is not
# built for TSan), labelled `tsan` by tests/CMakeLists.txt.
tsan: deps
	$(call configure,build-tsan,-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOMPUTE_SANITIZE=thread)
	cmake --build build-tsan -j $(JOBS) --target tsan_tests
	$(call ctest,build-tsan,TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp",-L tsan)

# Clang's thread-safety analysis: every target built with clang, where the
# project's own code gets -Wthread-safety on top of -Wall -Wextra -Werror
# (GCC ignores the ABSL_GUARDED_BY annotations).
thread-safety: deps
	$(call configure,build-clang,-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++)
	cmake --build build-clang -j $(JOBS)

# libFuzzer targets (tests/fuzz), clang with ASan + UBSan, in build-fuzz/;
# each runs FUZZ_SECONDS on its corpus (tests/fuzz/corpus/<target>/, whose
# files include every crasher found so far, as regression inputs).
FUZZ_SECONDS ?= 60
fuzz: deps
	$(call configure,build-fuzz,-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ -DCOMPUTE_FUZZ=ON -DCOMPUTE_BUILD_TESTS=OFF)
	cmake --build build-fuzz -j $(JOBS) --target fuzzers
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./tests/fuzz/run.sh build-fuzz/tests/fuzz

# Every C++ file (those `make format` formats) as clang-format would write
# it (.clang-format).
check-format: deps
	@find server client tests proto \( -name '*.h' -o -name '*.cc' \) -print0 | \
	  xargs -0 clang-format --dry-run --Werror

# Benchmarks, never run as tests; each prints a table whose ratios are
# against a baseline measured in the same run: the pool against a minimal
# pool and thread-per-task, the cost of metrics on the pool, the blur and
# primes kernels against the ones they replaced (ns per pixel / number), then
# scripts/bench/: compute-server end to end against a bare gRPC server
# (echo_server, h2load), under 1x/2x/4x overload, the round trip of a 16 MP
# blur against echo_server moving the same bytes, under a burst of large
# blurs with --max_inflight_bytes, the same burst under glibc, jemalloc and
# mimalloc (the first run also builds compute-server with glibc's malloc in
# build/glibc), with tenants and priorities competing (fairness), and three
# unequal replicas under least_loaded and round_robin (fleet). About 21
# minutes; `make bench BENCH_QUICK=1` about 8. Each step is bounded by
# scripts/bench/bounded.sh, which stops the step and every server it
# started at its limit or on Ctrl-C (`timeout --foreground` left them
# running; plain `timeout` is out of Ctrl-C's reach).
bench: build
	cmake --build $(BUILD) -j $(JOBS) --target pool_bench metrics_bench kernel_bench echo_server
	./scripts/bench/bounded.sh 300 ./$(BUILD)/tests/bench/pool_bench
	./scripts/bench/bounded.sh 300 ./$(BUILD)/tests/bench/metrics_bench
	./scripts/bench/bounded.sh 300 ./$(BUILD)/tests/bench/kernel_bench
	BUILD=$(abspath $(BUILD)) ./scripts/bench/bounded.sh 300 ./scripts/bench/e2e.sh
	BUILD=$(abspath $(BUILD)) ./scripts/bench/bounded.sh 300 ./scripts/bench/overload.sh
	BUILD=$(abspath $(BUILD)) ./scripts/bench/bounded.sh 300 ./scripts/bench/payload.sh
	BUILD=$(abspath $(BUILD)) ./scripts/bench/bounded.sh 300 ./scripts/bench/memory.sh
	BUILD=$(abspath $(BUILD)) ./scripts/bench/bounded.sh 1800 ./scripts/bench/memory_allocators.sh
	BUILD=$(abspath $(BUILD)) ./scripts/bench/bounded.sh 600 ./scripts/bench/fairness.sh
	BUILD=$(abspath $(BUILD)) ./scripts/bench/bounded.sh 300 ./scripts/bench/fleet.sh

# The end-to-end step of `make bench` alone (about 3 minutes; BENCH_QUICK=1
# under 1): compute-server, then the completion-queue and callback echo
# servers, each alone under h2load, their calls/s with ratios, then latency
# at half of echo_cq's throughput (scripts/bench/e2e.sh says how).
bench-e2e: build
	cmake --build $(BUILD) -j $(JOBS) --target echo_server
	BUILD=$(abspath $(BUILD)) ./scripts/bench/bounded.sh 300 ./scripts/bench/e2e.sh

# Soak (not in CI): 10 minutes of mixed load against the real binary,
# sampling its RSS, open fds and threads every 5 s; fails when any trends
# upward after the warm-up (the rule is in scripts/soak.sh and docs/reliability.md, "Soak").
# SOAK_TIME=120s for a shorter run.
SOAK_TIME ?= 10m
soak: build
	BUILD=$(abspath $(BUILD)) SOAK_TIME=$(SOAK_TIME) ./scripts/soak.sh

# The container image, from the Dockerfile as it is: docker build when a
# Docker engine answers, else podman build (scripts/container.sh says what
# happens on a machine that reaches no container registry).
image:
	./scripts/image.sh compute:dev

# Build the image, serve from it, call it from outside, SIGTERM it.
test-image: build
	./scripts/test-image.sh

# Deployment checks without a cluster: compose, Prometheus rules, kustomize
# overlays against the Kubernetes and CRD schemas, and the dashboard's PromQL
# on a real Prometheus that scrapes the built server.
check-deploy: build
	COMPUTE_SERVER=$(BUILD)/server/compute-server ./tests/deploy/check.sh

format:
	@find server client tests proto -name '*.h' -o -name '*.cc' | xargs clang-format -i

clean:
	rm -rf build build-asan build-tsan build-clang build-fuzz
