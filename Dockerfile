# syntax=docker/dockerfile:1
# The openai-capi-consumer image: `docker build -t <registry>/openai-capi-consumer:<version> .`
# Runs as uid/gid 10001 with a read-only root filesystem in the Helm chart; see docs/deploying.md.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Builder: wheels for the package (its compiled Avro reader, the `fast` extra: cavro) and
# every dependency. The C compiler stays in this stage.
FROM ${PYTHON_IMAGE} AS builder
# REQUIRE_NATIVE_AVRO_READER: a base without a compiler or Python's headers fails the build
# (setup.py), rather than shipping an image that silently decodes with the slower cavro.
# CAPI_CONSUMER_MYPYC: transforms/ compiled with mypyc (~0.78x the instructions per event).
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    REQUIRE_NATIVE_AVRO_READER=1 \
    CAPI_CONSUMER_MYPYC=1
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY consumer ./consumer
COPY transforms ./transforms
COPY schemas ./schemas
RUN pip wheel --wheel-dir /wheels ".[fast]"

# Runtime: the installed wheels only, no build tools, no sources.
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels "openai-capi-consumer[fast]"
# The Avro schemas ship inside the package (schemas/), so default paths resolve here too.
WORKDIR /app
USER 10001:10001
# /metrics, /livez and /readyz (observability.port).
EXPOSE 9464
ENTRYPOINT ["capi-consumer"]
CMD ["run", "--config", "/etc/capi-consumer/config.yaml"]
