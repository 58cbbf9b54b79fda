"""clap-rt serve --config streams.toml: many streams on one batched engine, events to sinks."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="run many streams on one batched engine; events to JSON lines, MQTT, webhooks")
    p.add_argument("--config", required=True, metavar="TOML",
                   help="the service's streams, engine and sinks (see README: Running as a service)")
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..serve.service import serve
    return serve(args.config, check=args.check)
