"""`cogenesis cloud serve`: run the cloud service with uvicorn.
`cogenesis cloud convert-gguf`: make a GGUF loadable by the vllm engine.

The flags of `serve` are derived from CloudSettings, as the edge's are from EdgeSettings
(shared_protocol.settings_cli). Tokens come from the environment (COGENESIS_CLOUD_TOKEN,
COGENESIS_CLOUD_TENANTS, COGENESIS_CLOUD_METRICS_TOKEN) or the tenants file only, never
from argv, where other users of the machine could read them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cloud_service.errors import EngineUnavailable
from cloud_service.settings import CloudSettings
from cloud_service.tenants import TenantsFileError
from shared_protocol.defaults import DefaultModelMissing
from shared_protocol.settings_cli import SettingsError, add_settings_flags, load_settings

EXIT_USAGE = 2
# Every setting is a flag but the secrets (argv is visible to other users of the machine)
# and the JSON ones (env COGENESIS_CLOUD_TENANTS, or the tenants file; vLLM options).
NOT_FLAGS = {"token", "metrics_token", "tenants", "vllm_options"}
SERVE_SETTINGS = [name for name in CloudSettings.model_fields if name not in NOT_FLAGS]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cogenesis cloud", description="CoGenesis cloud service (sketches, logits)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve the /v1 API",
        description="Flags override COGENESIS_CLOUD_* variables, which override defaults. "
        "Tenants: --tenants-file, env COGENESIS_CLOUD_TENANTS (JSON) or "
        "COGENESIS_CLOUD_TOKEN (one token, tenant 'default').",
    )
    add_settings_flags(serve, CloudSettings, SERVE_SETTINGS, aliases={"model_path": ["--model"]})
    serve.add_argument("--log-level", default="info", help="uvicorn log level")
    convert = commands.add_parser(
        "convert-gguf",
        help="dequantize a GGUF into a Hugging Face folder for --engine vllm",
        description="Needs transformers, gguf and torch (the vllm extra). Runs offline.",
    )
    convert.add_argument("gguf", type=Path, metavar="GGUF_PATH", help="the .gguf file")
    convert.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder to write")
    convert.add_argument("--force", action="store_true", help="replace a non-empty OUT_DIR")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse exits; callers of main() want a code
        return int(exit_.code or 0)
    if args.command == "serve":
        return serve(args)
    if args.command == "convert-gguf":
        return convert_gguf(args)
    return EXIT_USAGE  # pragma: no cover - argparse enforces a command


def serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(CloudSettings, args)
    except SettingsError as exc:
        return _fail(str(exc))
    try:
        tenants = settings.tenant_directory()
    except TenantsFileError as exc:
        return _fail(str(exc))
    if not len(tenants):
        return _fail(
            "no tenant is configured: set COGENESIS_CLOUD_TOKEN, or list tenants in "
            "--tenants-file (COGENESIS_CLOUD_TENANTS_FILE)"
        )
    try:
        model = settings.resolved_model_path()
    except DefaultModelMissing as exc:
        return _fail(str(exc))
    if settings.engine == "llamacpp" and not model.is_file():
        return _fail(f"model file not found: {model}")

    import uvicorn

    from cloud_service.app import create_app

    try:
        app = create_app(settings)
    except EngineUnavailable as exc:
        return _fail(str(exc))
    print(
        f"cogenesis cloud: {model} on http://{settings.host}:{settings.port} "
        f"({len(tenants)} tenant(s))"
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level)
    return 0


def convert_gguf(args: argparse.Namespace) -> int:
    from cloud_service.convert import ConvertError
    from cloud_service.convert import convert_gguf as convert

    try:
        convert(args.gguf, args.out_dir, overwrite=args.force)
    except ConvertError as exc:
        return _fail(str(exc))
    return 0


def _fail(message: str) -> int:
    print(f"cogenesis cloud: {message}", file=sys.stderr)
    return EXIT_USAGE
