"""The `cogenesis` command: dispatches to each end's own CLI.

This is the one place that knows both ends. Each end, and the research tools, is
imported lazily, so the cloud host never needs the edge's dependencies and the reverse.
"""

from __future__ import annotations

import sys

EDGE_GROUPS = ("edge", "profiles", "keys", "ledger")
RESEARCH_GROUPS = ("fusion", "eval")

USAGE = """usage: cogenesis COMMAND ...

Commands:
  demo                  start both ends on 127.0.0.1 and answer a task in sketch mode
  cloud serve           run the cloud service (the large model, no private context)
  cloud convert-gguf    dequantize a GGUF into a Hugging Face folder for the vLLM engine
  edge serve            run the edge agent (the local endpoint apps call)
  keys ...              create, list, revoke the local API keys apps call the edge with
  profiles ...          import, export, list, show, delete stored users
  ledger ...            show and verify what left the device
  fusion train          train the learned fusion gate for logits mode
  eval nll FILE.json    teacher-forced NLL of references per mode and fusion rule
  protocol schema       print the wire protocol's JSON schema

Run `cogenesis COMMAND --help` for a command's options."""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = args[0], args[1:]
    if command == "cloud":
        from cloud_service.cli import main as cloud_main

        return cloud_main(rest)
    if command in EDGE_GROUPS:
        from edge_agent.cli import main as edge_main

        return edge_main(args)
    if command in RESEARCH_GROUPS:
        from research.cli import main as research_main

        return research_main(args)
    if command == "demo":
        from cogenesis.demo import main as demo_main

        return demo_main(rest)
    if command == "protocol":
        return _protocol(rest)
    print(f"cogenesis: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


def _protocol(rest: list[str]) -> int:
    if rest != ["schema"]:
        print("usage: cogenesis protocol schema", file=sys.stderr)
        return 2
    from shared_protocol.schema import protocol_schema_json

    print(protocol_schema_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
