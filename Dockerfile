# GPU-host image: CUDA torch, the bot and the trainer. Not used by CI or the CPU set-up.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 tgclone
WORKDIR /app
RUN python3 -m venv /app/.venv && chown -R tgclone /app
ENV PATH=/app/.venv/bin:$PATH

# The CUDA build of torch first, so the package's torch range never pulls another one.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY training ./training
COPY storage ./storage
RUN pip install .

# The data volume belongs to the bot's user, or it could not write its database there.
RUN mkdir -p /data && chown tgclone:tgclone /data
USER tgclone
ENV DATA_DIR=/data HF_HOME=/data/hf-cache HEALTH_PORT=8080
VOLUME ["/data"]
# 8443: webhook mode (WEBHOOK_URL set), usually behind a TLS reverse proxy.
EXPOSE 8443
# GET /health answers 200 while the bot's event loop is responsive (no curl in the image).
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HEALTH_PORT', '8080'), timeout=5)"]
CMD ["tgclone", "run"]
