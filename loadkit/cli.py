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


def _cmd_validate(args: argparse.Namespace) -> int:
    from loadkit.scenario import load_scenario
    from loadkit.scenario.plan import plan
    from loadkit.scenario.render import render

    scenario = load_scenario(args.scenario)
    if args.quiet:
        print(f"ok: {args.scenario}: scenario {scenario.name!r} is valid")
        return 0
    print(render(scenario, plan(scenario), args.scenario))
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from loadkit.scenario.starter import write_starter

    path = write_starter(args.path)
    print(f"wrote {path}; check it with: loadkit validate {path}")
    return 0


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

    validate = sub.add_parser(
        "validate",
        help="check a scenario and print its plan (sends nothing)",
        description="Check a scenario file and print the plan: timeline, expected requests "
        "and tokens per region and workload, estimated cost, SLOs. Sends nothing.",
    )
    validate.add_argument("scenario", help="scenario YAML file")
    validate.add_argument("-q", "--quiet", action="store_true", help="only say whether it is valid")
    validate.set_defaults(func=_cmd_validate)

    init = sub.add_parser(
        "init",
        help="write a starter scenario",
        description="Write a commented starter scenario (never overwrites a file).",
    )
    init.add_argument("path", nargs="?", default="scenario.yaml", help="default: scenario.yaml")
    init.set_defaults(func=_cmd_init)
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
