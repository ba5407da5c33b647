# subhook-relay: the gateway on the embedded SQLite store, kept on a volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RELAY_LISTEN=0.0.0.0:8080 \
    RELAY_STORE=sqlite:////data/relay.db \
    RELAY_CONFIG=/app/config.example.yaml

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
# `relay health` reads the same config as `serve` (RELAY_CONFIG), so it follows `listen`
# and `tls` wherever they point.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/app/.venv/bin/relay", "health"]
# Mount your own config and set RELAY_CONFIG to its path (or pass --config to serve; then
# give the HEALTHCHECK the same RELAY_CONFIG).
# With the example config the operator must set SUBHOOK_SMS_KEY, SUBHOOK_INTERSMS_KEY,
# SUBHOOK_MMS_KEY, SUBHOOK_MAIL_KEY, SUBHOOK_VOICE_KEY, SUBHOOK_SHORTURL_KEY and
# ORDERS_WEBHOOK_SECRET (docker run
# -e ...): on 0.0.0.0, `relay serve` refuses to start (exit 1, naming each variable) while
# any key, destination secret or admin token is a placeholder published in that file, so
# the image never accepts pushes signed with a published key.
CMD ["/app/.venv/bin/relay", "serve"]
