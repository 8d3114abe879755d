"""`loadkit` subcommands: parse, call into the modules, print, set exit codes."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence

from loadkit import __version__
from loadkit.errors import UserError
from loadkit.orchestration.run_distributed import WorkerOptions
from loadkit.orchestration.run_options import add_arguments as add_run_arguments
from loadkit.orchestration.run_options import duration_arg as _duration_arg


def _cmd_mock(args: argparse.Namespace) -> int:
    from mocks.cli import main as mock_main

    return mock_main(args.mock_args)


def _cmd_chaos(args: argparse.Namespace) -> int:
    from loadkit.chaos.cli import main as chaos_main

    return chaos_main(args.chaos_args)


def _cmd_validate(args: argparse.Namespace) -> int:
    from loadkit.scenario import load_scenario
    from loadkit.scenario.plan import plan
    from loadkit.scenario.render import render

    scenario = load_scenario(args.scenario)
    if args.quiet:
        print(f"ok: {args.scenario}: scenario {scenario.name!r} is valid")
        return 0
    the_plan = plan(scenario)
    print(render(scenario, the_plan, args.scenario))
    if args.calibration:
        from loadkit.orchestration.calibrate import validate_lines

        print("\n" + "\n".join(validate_lines(scenario, the_plan, args.calibration)))
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from loadkit.scenario.starter import write_starter

    path = write_starter(args.path)
    print(f"wrote {path}; check it with: loadkit validate {path}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from loadkit.orchestration.run import run
    from loadkit.orchestration.run_options import RunOptions, from_namespace

    return run(from_namespace(args, RunOptions))


def _cmd_worker(args: argparse.Namespace) -> int:
    from loadkit.orchestration.run_distributed import exec_worker
    from loadkit.orchestration.run_options import from_namespace

    exec_worker(from_namespace(args, WorkerOptions))
    return 0  # not reached: the process is Locust's worker now


def _cmd_trace(args: argparse.Namespace) -> int:
    import json

    from loadkit.workload.traces import read_trace
    from loadkit.workload.tracestats import describe, render

    for path in args.paths:
        d = describe(read_trace(path, args.format))
        print(json.dumps(d) if args.json else render(d))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from loadkit.report.build import build_report, report_line

    if args.faults:
        from pathlib import Path

        from loadkit.results.journal_import import import_journal
        from loadkit.results.run_folder import RunFolder

        print(import_journal(RunFolder(Path(args.run_dir)), Path(args.faults)))
    result = build_report(args.run_dir, window_s=args.window)
    for note in result.notes:
        print(f"warning: {note}", file=sys.stderr)
    print(report_line(result))
    return 1 if result.damaged else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from loadkit.report.compare import Subset, write_compare

    labels = args.labels if args.labels else None
    subset = Subset(tuple(args.workload or ()), tuple(args.region or ()))
    runs = [Path(p) for p in args.runs]
    c = write_compare(runs, labels, Path(args.out), seed=args.seed, subset=subset)
    for line in c.findings:
        print(f"- {line}")
    print(f"report: {Path(args.out) / 'compare.html'}")
    if args.fail_on_regression is not None:
        from loadkit.analysis.compare import metric_label, regressions

        worse = regressions(c, args.fail_on_regression)
        for row in worse:
            print(f"regression: {metric_label(row.metric)} in {row.label}", file=sys.stderr)
        return 1 if worse else 0
    return 0


def _levels_arg(text: str) -> tuple[float, ...]:
    try:
        levels = tuple(float(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 8,16,32, got {text!r}") from None
    if not levels or any(x <= 0 for x in levels):
        raise argparse.ArgumentTypeError(f"levels must be positive numbers, got {text!r}")
    return levels


def _cmd_capacity(args: argparse.Namespace) -> int:
    from pathlib import Path

    from loadkit.orchestration.capacity import CapacityOptions, run_capacity

    opts = CapacityOptions(
        scenario=Path(args.scenario),
        out=Path(args.out),
        step_duration_s=args.step_duration,
        levels=args.levels,
        start=args.start,
        factor=args.factor,
        max_steps=args.max_steps,
        bisect=args.bisect,
        warmup_s=args.warmup,
        peak=args.peak,
        yes=args.yes,
        processes=args.processes,
    )
    run_capacity(opts)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loadkit",
        description="Load and resilience testing for generative-AI services.",
    )
    parser.add_argument("--version", action="version", version=f"loadkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    for name, summary, module, func in (
        (
            "mock",
            "run the bundled mock provider (OpenAI, Azure, Anthropic, copilot)",
            "mocks",
            _cmd_mock,
        ),
        (
            "chaos",
            "run the LLM-aware fault-injection proxy in front of an upstream",
            "loadkit.chaos",
            _cmd_chaos,
        ),
    ):
        # a server with its own parser: everything after the name is passed on as it is
        passthrough = sub.add_parser(
            name,
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]} (same options as "
            f"`python -m {module}`).",
            add_help=False,
        )
        passthrough.add_argument(f"{name}_args", nargs=argparse.REMAINDER)
        passthrough.set_defaults(func=func)

    validate = sub.add_parser(
        "validate",
        help="check a scenario and print its plan (sends nothing)",
        description="Check a scenario file and print the plan: timeline, expected requests "
        "and tokens per region and workload, estimated cost, SLOs. Sends nothing.",
    )
    validate.add_argument("scenario", help="scenario YAML file")
    validate.add_argument("-q", "--quiet", action="store_true", help="only say whether it is valid")
    validate.add_argument(
        "--calibration",
        metavar="RUN_DIR",
        help="an earlier run folder: show planned prompt tokens in that target's tokens",
    )
    validate.set_defaults(func=_cmd_validate)

    init = sub.add_parser(
        "init",
        help="write a starter scenario",
        description="Write a commented starter scenario (never overwrites a file).",
    )
    init.add_argument("path", nargs="?", default="scenario.yaml", help="default: scenario.yaml")
    init.set_defaults(func=_cmd_init)

    run = sub.add_parser(
        "run",
        help="run a scenario with Locust and write a run folder",
        description="Run a scenario: start the mock if the target is the mock, replay the "
        "traffic with Locust, write the run folder (requests.csv, summary.json, Locust CSV "
        "and HTML) and print a summary.",
    )
    add_run_arguments(run)
    run.set_defaults(func=_cmd_run)

    worker = sub.add_parser(
        "worker",
        help="run a Locust worker for a `loadkit run --master` (users, records to the master)",
        description="Join a `loadkit run SCENARIO --master` as a Locust worker. The worker "
        "gets the scenario and the run settings from the master, runs its share of the users "
        "and arrivals, and ships every request record to the master. API keys and header "
        "variables come from this machine's environment.",
    )
    add_run_arguments(worker, options=WorkerOptions)
    worker.set_defaults(func=_cmd_worker)

    from loadkit.workload.traces import FORMATS, TRACE_FORMATS

    trace = sub.add_parser(
        "trace",
        help="summarise request traces "
        f"({', '.join(r.title for r in TRACE_FORMATS.values())} formats)",
        description="Print a trace's request count, rate, inter-arrival CV and token "
        "percentiles, to compare it with published figures before replaying it.",
    )
    trace.add_argument("paths", nargs="+", metavar="FILE", help="trace file(s)")
    trace.add_argument("--format", choices=FORMATS, help="default: from the file")
    trace.add_argument("--json", action="store_true", help="one JSON object per file")
    trace.set_defaults(func=_cmd_trace)

    report = sub.add_parser(
        "report",
        help="write charts and report.html for a run folder",
        description="Analyse a run folder's records: extend summary.json, draw charts/*.png "
        "and write a self-contained report.html with the readiness verdict. Exit code 1 when "
        "requests.csv was damaged (the report covers the rows that could be read).",
    )
    report.add_argument("run_dir", metavar="RUN_DIR", help="run folder (holds requests.csv)")
    report.add_argument(
        "--window",
        type=_duration_arg,
        metavar="D",
        help="chart window width (e.g. 10s, 1m; default: about 60 windows over the run)",
    )
    report.add_argument(
        "--faults",
        metavar="FILE",
        default=None,
        help="a fault journal written outside the run (`loadkit chaos --journal FILE`): its "
        "windows are placed on the run's clock and merged into the run's faults.csv first",
    )
    report.set_defaults(func=_cmd_report)

    compare = sub.add_parser(
        "compare",
        help="compare runs (pilot vs production, a phased roll-out) with confidence intervals",
        description="Compare run folders against the first: CDFs, percentiles with bootstrap "
        "CIs, failures, cost per request, a table of deltas with significance tests and "
        "plain-language findings. Writes compare.html (self-contained), charts/*.png and "
        "compare.json.",
    )
    compare.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders; first = baseline")
    compare.add_argument("--labels", nargs="+", metavar="NAME", help="a name per run")
    compare.add_argument("--out", required=True, metavar="DIR", help="output folder")
    compare.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    compare.add_argument(
        "--workload", action="append", metavar="NAME", help="only this workload (repeatable)"
    )
    compare.add_argument(
        "--region", action="append", metavar="NAME", help="only this region (repeatable)"
    )
    compare.add_argument(
        "--fail-on-regression",
        type=float,
        metavar="FACTOR",
        help="exit 1 when a p95 latency, the error rate, the SLO misses or the cost per "
        "request is significantly worse than the baseline by more than FACTOR (e.g. 1.2)",
    )
    compare.set_defaults(func=_cmd_compare)

    capacity = sub.add_parser(
        "capacity",
        help="step the load until an SLO breaks; report capacity, knee and headroom",
        description="Run the scenario at increasing load (users for closed loop, sessions/s "
        "for open loop), one short `loadkit run` per step, until a step breaks an SLO. "
        "Reports the highest load that met every SLO, the knee chart, the cost per request "
        "there and the headroom against the scenario's planned peak.",
    )
    capacity.add_argument("scenario", help="scenario YAML file")
    capacity.add_argument("--out", required=True, metavar="DIR", help="output folder")
    capacity.add_argument(
        "--step-duration",
        type=_duration_arg,
        default=30.0,
        metavar="D",
        help="how long each load level runs (default 30s)",
    )
    capacity.add_argument(
        "--warmup",
        type=_duration_arg,
        metavar="D",
        help="ignored start of each step (default 25%%)",
    )
    capacity.add_argument(
        "--levels",
        type=_levels_arg,
        metavar="L1,L2,..",
        help="loads to try (default: the scenario's step phases, else --start doubling)",
    )
    capacity.add_argument("--start", type=float, metavar="N", help="first load of the series")
    capacity.add_argument("--factor", type=float, default=2.0, help="load multiplier per step")
    capacity.add_argument("--max-steps", type=int, default=8, metavar="N", help="default 8")
    capacity.add_argument(
        "--bisect",
        type=int,
        default=0,
        metavar="N",
        help="extra steps between the last good and the first bad load (default 0)",
    )
    capacity.add_argument(
        "--peak", type=float, metavar="N", help="planned peak load (default: the scenario's)"
    )
    add_run_arguments(capacity, only=("processes", "yes"))  # as `loadkit run` has them
    capacity.set_defaults(func=_cmd_capacity)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["mock"]:
        # argparse's REMAINDER refuses options right after a subcommand: forward them as-is.
        from mocks.cli import main as mock_main

        return mock_main(argv[1:])
    if argv[:1] == ["chaos"]:
        from loadkit.chaos.cli import main as chaos_main

        return chaos_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # The reader went away (`loadkit validate x | head`): stop quietly. Point stdout at
        # devnull so the interpreter's final flush of what is still buffered cannot raise
        # again. Exit 1, not 0: the output was not all delivered, so a caller that checks
        # the status (`set -o pipefail`) must not take a cut-off listing for a complete
        # one; 1 stays apart from 2, which means the user's input is wrong.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is no file (captured, replaced)
            pass
        finally:
            os.close(devnull)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, not in the interpreter's exit
        return code
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # a full disk is the machine's state, not a bug: one line (a run says more)
        print(f"error: no space left on device: could not write {exc.filename}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
