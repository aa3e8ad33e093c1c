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
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCOMPUTE_BUILD_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" --target compute-server compute-client \
 && strip /build/server/compute-server /build/client/compute-client

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libssl3 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libjemalloc2 \
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
# Exec form: the server is PID 1 and gets SIGTERM itself, then drains.
ENTRYPOINT ["compute-server"]
