# syntax=docker/dockerfile:1
# kaipiao's image: one image for every role (`serve --no-workers`, `worker`, `migrate`).
# The build stage compiles the ledger walker into kaipiao's wheel; the runtime stage installs the
# wheels offline into a venv and runs as a non-root user on a read-only root (writes go to /tmp,
# an emptyDir in the chart). tini is PID 1 and forwards SIGTERM to kaipiao, which drains.
#
# Nothing but the package registries is reachable from kaipiao's CI, so the image is not built
# there: tests/e2e/test_image_steps.py runs these same scripts outside a container.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libssl-dev libsqlite3-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY src ./src
COPY scripts/build-wheels scripts/install-wheels ./scripts/
RUN scripts/build-wheels /wheels

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kaipiao" \
      org.opencontainers.image.description="Self-hosted e-invoice (fapiao) issuing gateway" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/kaipiao/kaipiao" \
      org.opencontainers.image.documentation="https://github.com/kaipiao/kaipiao/blob/main/docs/deploy.md"
# libssl and libsqlite3 for the compiled walker; tini as PID 1.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini libssl3 libsqlite3-0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 kaipiao \
 && useradd --system --uid 10001 --gid kaipiao --no-create-home --home-dir /tmp kaipiao
COPY --from=build /wheels /wheels
COPY --from=build /src/scripts/install-wheels /usr/local/bin/install-wheels
RUN install-wheels /wheels /opt/kaipiao && rm -rf /wheels /usr/local/bin/install-wheels
ENV PATH=/opt/kaipiao/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KAIPIAO_DATA_DIR=/tmp/kaipiao \
    KAIPIAO_HOST=0.0.0.0
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
ENTRYPOINT ["tini", "--", "kaipiao"]
CMD ["serve", "--no-workers"]
