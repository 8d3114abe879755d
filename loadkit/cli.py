"""`loadkit` subcommands: parse, call into the modules, print, set exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from loadkit import __version__
from loadkit.errors import UserError


def _cmd_mock(args: argparse.Namespace) -> int:
    from mocks.cli import main as mock_main

    return mock_main(args.mock_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loadkit",
        description="Load and resilience testing for generative-AI services.",
    )
    parser.add_argument("--version", action="version", version=f"loadkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    mock = sub.add_parser(
        "mock",
        help="run the bundled OpenAI-compatible mock provider",
        description="Run the bundled mock provider (same options as `python -m mocks`).",
        add_help=False,
    )
    mock.add_argument("mock_args", nargs=argparse.REMAINDER)
    mock.set_defaults(func=_cmd_mock)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
