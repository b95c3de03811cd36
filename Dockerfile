# The base image, pinned by digest: the same bytes on every build, whatever
# the tag points to later. This is the multi-arch index of python:3.11-slim
# (= 3.11.17-slim-trixie: Python 3.11.17 on Debian 13), created 2026-10-01.
# To update it: `docker buildx imagetools inspect python:3.11-slim` prints
# the index digest (`Digest:`); put it here, rebuild, run the suite. Dependabot
# (package-ecosystem "docker") and Renovate both update `tag@sha256:` pins.
FROM python:3.11-slim@sha256:45037981b62b34b44602584fccbc4d884d5f7dc92c7ee86bb38a698a79fe1e51

# Non-root, with a writable place for the embedded queue and bundles.
RUN useradd --create-home --uid 10001 bridge
WORKDIR /app
# Exactly the versions in requirements.lock, each checked by its hash; then
# the service itself, with nothing more.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install --no-cache-dir --no-deps . && mkdir -p /data /bundles && chown bridge /data /bundles

USER bridge
# WORKER_HTTP: `worker` answers /healthz, /readyz and /metrics on PORT too,
# so the one HEALTHCHECK below fits `serve`, `serve --no-worker` and `worker`.
ENV HOST=0.0.0.0 \
    PORT=8080 \
    WORKER_HTTP=true \
    QUEUE_URL=sqlite:////data/queue.db \
    STORAGE_URL=/bundles
EXPOSE 8080
VOLUME ["/data", "/bundles"]
# GET /healthz on 127.0.0.1:$PORT; one line on stderr when it fails.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["caption-bridge", "health"]
# File handles: the service raises its soft limit to the hard one and keeps
# at most MAX_CONNECTIONS connections (3/4 of the limit at most); a runtime
# giving 1024:1024 caps it at 768 (`docker run --ulimit nofile=4096:4096`).
# SIGTERM drains in-flight requests and exits 0.
ENTRYPOINT ["caption-bridge"]
CMD ["serve"]
