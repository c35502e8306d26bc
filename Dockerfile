# syntax=docker/dockerfile:1
# migration-guard: one image for `migration-guard webhook` (webhook + extension, gunicorn over
# TLS) and `migration-guard enforcer`. tests/integration/test_packaging.py runs the RUN lines of
# both stages (no Docker engine there) and starts each entry point from the result.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: wheels for the project and every dependency --------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY webhook ./webhook
COPY extension ./extension
RUN python -m pip wheel --wheel-dir /wheels .

# ---- final: a virtualenv from those wheels; no compiler, no pip cache, no sources ---------------
FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/migration-guard/bin:$PATH
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/migration-guard \
    && /opt/migration-guard/bin/pip install --no-index --find-links /wheels migration-guard \
    && /opt/migration-guard/bin/pip uninstall --yes pip setuptools wheel
# A numeric non-root user, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
RUN groupadd --gid 10001 migration-guard \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin migration-guard
USER 10001:10001
WORKDIR /tmp
EXPOSE 8443 9102
# `webhook` runs gunicorn (one gthread worker) over TLS; the chart passes `webhook` or `enforcer`.
ENTRYPOINT ["migration-guard"]
CMD ["webhook"]
