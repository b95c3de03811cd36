FROM python:3.11-slim

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
ENV HOST=0.0.0.0 \
    PORT=8080 \
    QUEUE_URL=sqlite:////data/queue.db \
    STORAGE_URL=/bundles
EXPOSE 8080
VOLUME ["/data", "/bundles"]
HEALTHCHECK CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz')"
# File handles: the service raises its soft limit to the hard one and keeps
# at most MAX_CONNECTIONS connections (3/4 of the limit at most); a runtime
# giving 1024:1024 caps it at 768 (`docker run --ulimit nofile=4096:4096`).
# SIGTERM drains in-flight requests and exits 0.
ENTRYPOINT ["caption-bridge"]
CMD ["serve"]
