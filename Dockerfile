# The bot's image: by default the GPU-host image (CUDA torch on nvidia/cuda), the bot and the
# trainer. Not used by CI or the CPU set-up, except by tests/deploy, which builds this file from
# a local Debian base with the CPU torch through the build args below.
#   BASE_IMAGE       an apt-based image (Debian/Ubuntu) whose python3 has a torch wheel
#   TORCH_VERSION    the torch release, installed before the package so its range pulls no other
#   TORCH_INDEX_URL  the index torch and its own dependencies come from (PEP 503, or a file: URL)
#   APP_UID/APP_GID  the bot's user and group ids (the owner of /data); a user or group that
#                    already holds them in the base (Ubuntu 24.04's `ubuntu`, 1000) is replaced
ARG BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
FROM ${BASE_IMAGE}

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG APP_UID=1000
ARG APP_GID=1000

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
# build-essential and the headers: Triton compiles its launcher at run time (torch.compile).
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential \
    && rm -rf /var/lib/apt/lists/*

# `useradd --uid 1000` alone fails on Ubuntu 24.04 ("UID 1000 is not unique"): whoever holds
# the ids in the base gives them up to the bot's user and group.
RUN set -eu; \
    old_user="$(getent passwd "$APP_UID" | cut -d: -f1)"; \
    if [ -n "$old_user" ]; then \
        old_home="$(getent passwd "$APP_UID" | cut -d: -f6)"; \
        userdel "$old_user"; \
        case "$old_home" in /home/?*) rm -rf "$old_home" ;; esac; \
    fi; \
    old_group="$(getent group "$APP_GID" | cut -d: -f1)"; \
    if [ -n "$old_group" ]; then groupdel "$old_group"; fi; \
    groupadd --gid "$APP_GID" tgclone; \
    useradd --create-home --uid "$APP_UID" --gid "$APP_GID" --shell /bin/bash tgclone

WORKDIR /app
RUN python3 -m venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH

# torch first, from its own index, so the package's torch range never pulls another build.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY training ./training
COPY storage ./storage
RUN pip install .

# The data volume belongs to the bot's user, or it could not write its database there.
RUN mkdir -p /data && chown "$APP_UID:$APP_GID" /data
USER tgclone
ENV DATA_DIR=/data HF_HOME=/data/hf-cache HEALTH_PORT=8080
VOLUME ["/data"]
# 8443: webhook mode (WEBHOOK_URL set), usually behind a TLS reverse proxy.
EXPOSE 8443
# GET /health (bot/health.py) on HEALTH_PORT answers 200 while the bot's event loop is
# responsive (no curl in the image). Docker-format images only: OCI images drop HEALTHCHECK.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HEALTH_PORT', '8080'), timeout=5)"]
CMD ["tgclone", "run"]
