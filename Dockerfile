# Interpretability workbench. CPU by default; CUDA with --build-arg VARIANT=cuda.
#   docker build -t workbench .                          # CPU
#   docker build -t workbench:cuda --build-arg VARIANT=cuda .
#   docker run -p 8501:8501 -v wb-data:/data workbench   # add --gpus all for the CUDA image
ARG VARIANT=cpu
FROM python:3.11-slim-bookworm

ARG VARIANT
# Chromium: static PNG/SVG figure export through kaleido. curl: the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends chromium curl \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 workbench
WORKDIR /opt/workbench
COPY requirements.lock pyproject.toml ./
# torch comes from PyTorch's CPU index (PyPI's Linux wheel carries the CUDA runtime) or from PyPI
# for the CUDA variant; the rest from the pinned lock with --no-deps (no torchvision, ever).
RUN if [ "$VARIANT" = "cpu" ]; then \
      pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0; \
    else \
      pip install --no-cache-dir torch==2.13.0; \
    fi \
 && grep -v '^torch==' requirements.lock > /tmp/rest.lock \
 && pip install --no-cache-dir --no-deps -r /tmp/rest.lock \
 && ! pip show -q torchvision 2>/dev/null
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
 && mkdir -p /data && chown workbench:workbench /data

USER workbench
ENV WORKBENCH_HOME=/data \
    BROWSER_PATH=/usr/bin/chromium \
    HF_HOME=/data/hf \
    HF_HUB_OFFLINE=1 \
    PYTHONUNBUFFERED=1
# HF_HUB_OFFLINE=1 by default (air-gapped); run with -e HF_HUB_OFFLINE=0 to let TransformerLens names download.
# For a group (README, "Deploying for a group"): -e WORKBENCH_TOKEN=… -e WORKBENCH_OPERATOR_TOKEN=…, or mount a
# .streamlit/secrets.toml with an [auth] section for OIDC (st.login) and set WORKBENCH_OPERATORS; then folders are
# confined to WORKBENCH_MODEL_ROOTS (default /data/models, /data/saes, /data/data) and job limits apply.
EXPOSE 8501
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD curl --fail --silent http://localhost:8501/_stcore/health || exit 1
CMD ["workbench", "serve", "--port", "8501", "--address", "0.0.0.0"]
