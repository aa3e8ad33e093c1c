# compute: multi-stage image. The build stage uses the same install script
# and CMake build as a local checkout; the runtime stage carries only the
# shared libraries and the two binaries.

FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN ./scripts/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY CMakeLists.txt ./
COPY proto proto
COPY server server
COPY client client
# The revision for compute_build_info: .git is not in the build context, so
# the build cannot ask git (server/metrics/CMakeLists.txt); scripts/image.sh
# passes it. Empty (a plain docker build): "unknown".
ARG COMPUTE_REVISION=
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCOMPUTE_BUILD_TESTS=OFF -DCOMPUTE_REVISION="${COMPUTE_REVISION}" \
 && cmake --build /build -j"$(nproc)" --target compute-server compute-client \
 && strip /build/server/compute-server /build/client/compute-client

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libssl3 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libjemalloc2 tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home \
      --shell /usr/sbin/nologin compute
COPY --from=build /build/server/compute-server /build/client/compute-client \
     /usr/local/bin/
# Numeric, so that runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["compute-client", "health", "--target=localhost:50051", "--deadline=2s"]
# tini is PID 1 and passes SIGTERM on to the server, which drains. Not the
# server itself: the kernel drops a signal to PID 1 that is neither blocked
# nor handled, and the server can block it only once its libraries are
# loaded (~15 ms), so a SIGTERM that came sooner was lost and the container
# ran until it was killed (under `unshare --pid --fork`: every SIGTERM in
# the first 10 ms after the exec, some up to 20 ms). tini-static blocks
# signals within its first instructions (none lost); to the server, not
# PID 1, a SIGTERM before it blocks is fatal, which is what it asked for.
ENTRYPOINT ["/usr/bin/tini-static", "--", "compute-server"]
