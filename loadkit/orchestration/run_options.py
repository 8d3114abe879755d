"""`loadkit run`'s options, declared once: each RunOptions field carries its command-line flag.

`add_arguments` builds the argparse arguments from the fields (their defaults, flags, help),
`from_namespace` builds RunOptions from the parsed arguments, so a new option is one field.
`loadkit capacity` builds RunOptions directly for each step and shares two of the flags;
`loadkit worker`'s options (`loadkit.orchestration.run_distributed.WorkerOptions`) are
declared the same way.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from loadkit.traffic.config import DEFAULT_MASTER_PORT, DRAIN_S

_FLAG = "loadkit.flag"
T = TypeVar("T")
_DISTRIBUTED = "distributed (Locust's master; see docs/distributed.md)"


def duration_arg(text: str) -> float:
    """A duration option's value: seconds, or with a unit (`60s`, `5m`)."""
    from loadkit.scenario.units import parse_duration

    try:
        return float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


@dataclass(frozen=True)
class Flag:
    """How one RunOptions field appears on the command line."""

    names: tuple[str, ...]  # ("--users",); a name without dashes is the positional argument
    help: str
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None  # argparse's `type`
    action: str | None = None  # "store_true" / "store_false" for the switches
    group: str = ""  # the argparse group's title; "": the command's own arguments


def flag(*names: str, help: str, **kw: Any) -> dict[str, Flag]:
    """A field's metadata: its command-line flag."""
    return {_FLAG: Flag(names, help, **kw)}


@dataclass(frozen=True)
class RunOptions:
    """What one `loadkit run` does; each field with a `flag` is a command-line option."""

    scenario: Path = field(metadata=flag("scenario", help="scenario YAML file", parse=Path))
    out: Path | None = field(
        default=None,
        metadata=flag(
            "--out",
            help="run folder (default results/<scenario>-<time>)",
            metavar="DIR",
            parse=_optional_path,
        ),
    )
    duration_s: float | None = field(
        default=None,
        metadata=flag(
            "--duration",
            help="compress the whole timeline to D (e.g. 60s, 5m), keeping its shape",
            metavar="D",
            parse=duration_arg,
        ),
    )
    users: int | None = field(
        default=None,
        metadata=flag("--users", help="peak closed-loop users", metavar="N", parse=int),
    )
    web: bool = field(
        default=False,
        metadata=flag("--web", help="Locust's web UI on 127.0.0.1", action="store_true"),
    )
    web_port: int = field(
        default=8089, metadata=flag("--web-port", help=argparse.SUPPRESS, parse=int)
    )
    processes: int = field(
        default=1,
        metadata=flag("--processes", help="load-generator processes", metavar="N", parse=int),
    )
    drain_s: float = field(
        default=DRAIN_S,
        metadata=flag(
            "--drain",
            help="on Ctrl-C, SIGTERM or the end: time in-flight requests get to finish before "
            "they are recorded as aborted (default 10s)",
            metavar="D",
            parse=duration_arg,
        ),
    )
    fail_on_slo: bool = field(
        default=False,
        metadata=flag(
            "--fail-on-slo",
            help="exit 1 when an SLO is breached (CI gate)",
            action="store_true",
        ),
    )
    # fit the target's tokens per synthesised token first (calibrate.py)
    calibrate: bool = field(
        default=True,
        metadata=flag(
            "--no-calibrate",
            help="size prompts at 4 characters per token; skip measuring the target's tokens",
            action="store_false",
        ),
    )
    yes: bool = field(
        default=False,
        metadata=flag(
            "--yes",
            help="send paid traffic to a remote target without a budget",
            action="store_true",
        ),
    )
    seed: int | None = field(  # overrides the scenario's seed
        default=None,
        metadata=flag(
            "--seed", help="use seed N instead of the scenario's `seed:`", metavar="N", parse=int
        ),
    )
    # Distributed (Locust's flags): this process is the master; workers join with `loadkit worker`.
    master: bool = field(
        default=False,
        metadata=flag(
            "--master",
            help="be Locust's master: workers run the users. Like Locust, it listens on all "
            "interfaces, port 5557 (*:5557), unauthenticated: keep it on a private network or "
            "set --master-bind-host",
            action="store_true",
            group=_DISTRIBUTED,
        ),
    )
    master_bind_host: str = field(
        default="*",
        metadata=flag(
            "--master-bind-host",
            help="interface to listen on (default *, all; 127.0.0.1 for workers on this machine)",
            metavar="H",
            group=_DISTRIBUTED,
        ),
    )
    master_bind_port: int = field(
        default=DEFAULT_MASTER_PORT,
        metadata=flag(
            "--master-bind-port",
            help="port to listen on (default 5557, Locust's)",
            metavar="P",
            parse=int,
            group=_DISTRIBUTED,
        ),
    )
    expect_workers: int = field(
        default=1,
        metadata=flag(
            "--expect-workers",
            help="start once N workers joined (default 1); later ones get their share",
            metavar="N",
            parse=int,
            group=_DISTRIBUTED,
        ),
    )
    # Not on the command line:
    results_root: Path = Path("results")
    report: bool = True  # charts/*.png and report.html at the end (loadkit.report)


def add_arguments(
    parser: argparse.ArgumentParser, only: Collection[str] = (), options: type = RunOptions
) -> None:
    """The argparse arguments of the flagged fields of `options` (`only`: just these)."""
    groups: dict[str, Any] = {}
    for f in fields(options):
        spec: Flag | None = f.metadata.get(_FLAG)
        if spec is None or (only and f.name not in only):
            continue
        target: Any = parser
        if spec.group:
            target = groups.get(spec.group) or parser.add_argument_group(spec.group)
            groups[spec.group] = target
        kw: dict[str, Any] = {"help": spec.help}
        if spec.names[0].startswith("-"):
            kw.update(dest=f.name, default=f.default)
        if spec.action:
            kw["action"] = spec.action
        if spec.parse is not None:
            kw["type"] = spec.parse
        if spec.metavar:
            kw["metavar"] = spec.metavar
        target.add_argument(*spec.names, **kw)


def from_namespace(args: argparse.Namespace, options: type[T]) -> T:
    """The options (RunOptions, WorkerOptions) from the parsed arguments."""
    flagged = [f.name for f in fields(options) if _FLAG in f.metadata]
    return options(**{name: getattr(args, name) for name in flagged})
