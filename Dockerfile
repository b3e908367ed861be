# syntax=docker/dockerfile:1
#
# jex-collector image: one image for every role (daemon, `db upgrade`, simulator, backfill).
#
#   docker build -t jex-collector .
#   docker run --rm jex-collector --help
#
# Two stages on the same slim base: the builder makes a virtualenv in /opt/venv, the runtime stage
# copies only that venv and the source tree, so no pip cache, wheel or build tool ends up in the
# final image.
#
# Why an editable install from /app (and not `pip install /app` into site-packages): the collector
# finds `alembic.ini`, `migrations/` and `config/` relative to its own source tree
# (collector/store/migrate.py and collector/config.py use Path(__file__).parents[...]). A regular
# install would put the package in site-packages, away from those directories, and `collector db
# upgrade` would not find its migrations. An editable install leaves the package in /app next to
# them and only records its location (a .pth file and a small finder) in the venv, plus the
# `collector` console script. /app is at the same path in both stages, so that record stays valid.
#
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

# Dependencies first, from pyproject.toml alone, so that a source change does not reinstall them.
WORKDIR /app
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --upgrade pip setuptools wheel \
    && pip install -r /tmp/requirements.txt

# Then the project itself: the package plus the files it reads at run time.
COPY collector ./collector
COPY migrations ./migrations
COPY config ./config
COPY alembic.ini README.md ./
RUN pip install --no-deps --no-build-isolation -e /app \
    && python -m compileall -q /app/collector /app/migrations

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
COPY --from=builder /app /app
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/docker-entrypoint.sh

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COLLECTOR_DATA_DIR=/data \
    COLLECTOR_LOG_FORMAT=json \
    COLLECTOR_METRICS_HOST=0.0.0.0 \
    COLLECTOR_METRICS_PORT=9108

WORKDIR /app
# The source tree belongs to root and is read-only for the collector; only /data is writable.
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
