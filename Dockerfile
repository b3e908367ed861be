# syntax=docker/dockerfile:1
#
# jex-collector image: one image for every role (daemon, `db upgrade`, simulator, backfill).
#
#   docker build -t jex-collector .
#   docker run --rm jex-collector --help
#
# Two stages on the same slim base: the builder installs the locked dependencies
# (requirements/runtime.lock, every file's hash checked) into a virtualenv in /opt/venv, builds the
# project's wheel and installs it there; the runtime stage copies only that venv, so no pip cache,
# source tree, wheel or build tool ends up in the final image. The wheel carries everything the
# collector reads at run time: its migrations and its documented defaults (importlib.resources).

# No secret is ever part of the image: API keys and database passwords come at run time from the
# environment or from files (COLLECTOR_<NAME>_FILE, see docker/entrypoint.sh).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Dependencies first, from the lock alone, so that a source change does not reinstall them.
WORKDIR /build
COPY requirements/runtime.lock ./requirements/
RUN pip install --upgrade pip \
    && pip install --require-hashes -r requirements/runtime.lock

# Then the project itself, as a wheel: the package with its migrations and default config inside.
COPY pyproject.toml README.md alembic.ini ./
COPY collector ./collector
COPY migrations ./migrations
COPY config ./config
RUN pip wheel --no-deps -w /build/dist . \
    && pip install --no-deps /build/dist/jex_collector-*.whl \
    && python -m compileall -q /opt/venv/lib

# --- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="jex-collector" \
      org.opencontainers.image.description="Market-data collector for the JEX options exchange" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.documentation="docs/operations.md"

# A fixed numeric UID/GID, so that orchestrators can check "runs as non-root" and volumes can be
# prepared on the host (chown 10001).
RUN groupadd --system --gid 10001 collector \
    && useradd --system --uid 10001 --gid collector --home-dir /data --no-create-home \
               --shell /usr/sbin/nologin collector \
    && mkdir -p /data \
    && chown collector:collector /data

COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/docker-entrypoint.sh

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COLLECTOR_DATA_DIR=/data \
    COLLECTOR_LOG_FORMAT=json \
    COLLECTOR_METRICS_HOST=0.0.0.0 \
    COLLECTOR_METRICS_PORT=9108

WORKDIR /data
# The installed package belongs to root and is read-only for the collector; only /data is writable.
USER 10001:10001
# No VOLUME here: it would give every container (simulator, one-off `run`s) an anonymous volume;
# mount /data where it matters (docker-compose.yml does, for migrate and the daemon).
EXPOSE 9108

# /healthz of the daemon (`collector run`). Slim images have no curl: Python's urllib does it, and
# any non-2xx answer or connection error makes the probe fail. Other roles (migrate, simulator)
# override or disable this in docker-compose.yml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('COLLECTOR_METRICS_PORT', '9108'), timeout=4)"]

# The daemon exits 0 within a few seconds of SIGTERM (docker stop / compose down).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["collector", "run"]
