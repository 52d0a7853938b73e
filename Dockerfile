# trainhub's server image: `docker build -t trainhub .` (docs/deployment.md).
# Stage 1 builds the wheel and a virtual environment with the server and S3 extras; stage 2 copies
# that environment into a slim image that runs as an unprivileged user. Settings come from
# TRAINHUB_* variables (docs/settings.md); the hub keeps its data (the SQLite file, or with
# PostgreSQL and S3 only the spool of uploads in flight) in the volume /data.

FROM python:3.12-slim-trixie AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/trainhub \
    && /opt/trainhub/bin/pip install --no-cache-dir "$(ls /wheels/trainhub-*.whl)[server,s3]"

FROM python:3.12-slim-trixie
# pg_dump and pg_restore for `trainhub backup` and `restore` with PostgreSQL (17, as compose.yaml)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home trainhub \
    && mkdir /data \
    && chown trainhub:trainhub /data \
    && chmod 0700 /data
COPY --from=build /opt/trainhub /opt/trainhub
ENV PATH=/opt/trainhub/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TRAINHUB_DATA_DIR=/data \
    TRAINHUB_HOST=0.0.0.0 \
    TRAINHUB_PORT=8000
USER 10001:10001
WORKDIR /data
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TRAINHUB_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["trainhub"]
CMD ["server"]
