# CoGenesis edge agent: the small model (llama.cpp, CPU), the privacy guard (Presidio +
# spaCy) and the private SQLite store in /data (mount a volume there).
#
#   docker build -f deploy/edge.Dockerfile -t cogenesis-edge .
#
# The edge holds private profiles: publish its port on loopback only
# (-p 127.0.0.1:8700:8700), never on a public interface.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: compile llama-cpp-python once, into wheels -----------------------------------
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared_protocol ./shared_protocol
COPY edge_agent ./edge_agent
COPY cogenesis ./cogenesis
# Portable CPU build: the image may run on another CPU than the one that built it.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF"
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[edge]"

# -- runtime: no compilers ---------------------------------------------------------------
FROM ${PYTHON_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 cogenesis \
    && mkdir /data && chown cogenesis /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "cogenesis-gateway[edge]" \
    && rm -rf /wheels
USER cogenesis
# COGENESIS_HOME holds the SQLite store. Binding 0.0.0.0 inside the container is what
# lets a published port reach it; keep the publish on 127.0.0.1 (the CLI warns).
ENV COGENESIS_HOME=/data \
    COGENESIS_EDGE_HOST=0.0.0.0 \
    COGENESIS_EDGE_PORT=8700 \
    COGENESIS_EDGE_CLOUD_URL=http://cloud:8600 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8700
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8700/healthz', timeout=4)"]
ENTRYPOINT ["cogenesis"]
CMD ["edge", "serve"]
