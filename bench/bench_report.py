"""`loadkit report` on a synthetic million-record run: time and peak memory per stage,
against a plain read of the CSV measured in the same run.

Stages, each in a fresh subprocess so its peak RSS is its own (`ru_maxrss`):

- `bytes`: read the file and count its lines (the I/O floor);
- `csv_module`: Python's csv module into lists of strings (a plain read, no types);
- `read_records`: loadkit's reader into typed numpy columns (the floor for any analysis);
- `analyse`: read + every analysis the report shows (windows, percentiles, logical
  requests, goodput, breakdowns, faults, verdict);
- `report`: the whole `loadkit report` (analysis + 9 charts + report.html + summary.json).

The claim checked: the report of 1,000,000 records stays under 1 GB of memory; the time and
memory ratios against `read_records` and `csv_module` show what the analysis adds.

    python -m bench.bench_report [--records 1000000] [--run DIR] [--out bench/out/report.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STAGES = ("bytes", "csv_module", "read_records", "analyse", "report")
LIMIT_MB = 1024.0


def _stage(name: str, run: Path) -> dict[str, Any]:
    """Run one stage in this process; returns seconds and rows."""
    csv_path = run / "requests.csv"
    t0 = time.perf_counter()
    if name == "bytes":
        rows = csv_path.read_bytes().count(b"\n") - 1
    elif name == "csv_module":
        import csv

        with csv_path.open(newline="", encoding="utf-8") as fh:
            data = list(csv.reader(fh))
        rows = len(data) - 1
    elif name == "read_records":
        from loadkit.results.reader import read_records

        rows = read_records(csv_path).n
    elif name == "analyse":
        from loadkit.analysis.run import analyse
        from loadkit.report.facts import folder_facts
        from loadkit.results.reader import read_records
        from loadkit.results.run_folder import RunFolder

        rec = read_records(csv_path)
        analyse(rec.columns, folder_facts(RunFolder(run)).facts)
        rows = rec.n
    elif name == "report":
        from loadkit.report.build import build_report

        rows = int(build_report(run).summary["attempts"])
    else:
        raise SystemExit(f"unknown stage {name}")
    return {"seconds": time.perf_counter() - t0, "rows": rows}


def _child(name: str, run: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_report", "--stage", name, "--run", str(run)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"stage {name} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _make_run(records: int, where: Path) -> Path:
    from loadkit.report.synthetic import SynthFault, SynthRun, write_run

    # about 7% of requests retry (faults + organic), so ask for a few less logical requests
    spec = SynthRun(
        requests=int(records / 1.075),
        duration_s=3600.0,
        faults=(
            SynthFault("na-outage", "region_outage", "na", 1200.0, 1500.0),
            SynthFault("storm-429", "http_error", "", 2400.0, 2520.0, 0.4),
        ),
        slow_after_fault_s=60.0,
    )
    return write_run(where / "run", spec)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_report", description=__doc__)
    p.add_argument("--records", type=int, default=1_000_000, help="about this many rows")
    p.add_argument("--run", type=Path, help="reuse this run folder instead of generating one")
    p.add_argument("--out", type=Path, default=Path("bench/out/report.json"))
    p.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.stage:
        res = _stage(a.stage, a.run)
        res["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(json.dumps(res))
        return 0
    tmp = None
    run = a.run
    if run is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench-report-"))
        t0 = time.perf_counter()
        run = _make_run(a.records, tmp)
        print(f"synthetic run: {run} ({time.perf_counter() - t0:.1f} s to write)")
    try:
        size_mb = (run / "requests.csv").stat().st_size / 1e6
        results = {name: _child(name, run) for name in STAGES}
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    base = results["read_records"]
    plain = results["csv_module"]
    rows = base["rows"]
    print(f"\n{rows:,} records, requests.csv {size_mb:.0f} MB\n")
    print(
        f"{'stage':<14}{'seconds':>9}{'peak MB':>9}{'time / read':>13}{'mem / read':>12}"
        f"{'time / csv':>12}{'mem / csv':>11}"
    )
    for name, r in results.items():
        print(
            f"{name:<14}{r['seconds']:>9.2f}{r['peak_mb']:>9.0f}"
            f"{r['seconds'] / base['seconds']:>13.2f}{r['peak_mb'] / base['peak_mb']:>12.2f}"
            f"{r['seconds'] / plain['seconds']:>12.2f}{r['peak_mb'] / plain['peak_mb']:>11.2f}"
        )
    rep = results["report"]
    ok = rep["peak_mb"] < LIMIT_MB
    print(
        f"\nreport of {rows:,} records: peak {rep['peak_mb']:.0f} MB "
        f"({'under' if ok else 'OVER'} the {LIMIT_MB:.0f} MB limit), "
        f"{rep['seconds'] / base['seconds']:.2f}x the time of reading the records"
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"rows": rows, "csv_mb": size_mb, "stages": results, "under_limit": ok}
    a.out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {a.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
