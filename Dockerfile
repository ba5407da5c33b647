# subhook-relay: the gateway on the embedded SQLite store, kept on a volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RELAY_LISTEN=0.0.0.0:8080 \
    RELAY_STORE=sqlite:////data/relay.db

RUN useradd --create-home --uid 10001 relay && mkdir /data && chown relay /data
WORKDIR /app
COPY pyproject.toml README.md config.example.yaml ./
COPY relay ./relay
COPY schemas ./schemas
# The README's set-up, in the image's own virtual environment.
RUN python3 -m venv /app/.venv && /app/.venv/bin/pip install --no-cache-dir .

USER relay
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/app/.venv/bin/python", "-c", "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
# Mount your own config over /app/config.example.yaml or pass --config.
CMD ["/app/.venv/bin/relay", "serve", "--config", "/app/config.example.yaml"]
