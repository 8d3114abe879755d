"""`loadkit run`: the orchestration around one Locust run.

The parent process never imports Locust (gevent monkey-patches sockets at import); it:
1. loads the scenario, resolves the API key and header variables (a missing one: exit 2),
   and for a target off loopback prints the estimated cost and requires `--yes` unless the
   scenario has a budget;
2. creates the run folder (scenario copy with secrets redacted, environment.json);
3. starts the bundled mock when the target is the mock (`loadkit.servers`), then sends one
   real request to every endpoint (`loadkit.preflight`: unreachable, 401, 403 or 404 is one
   clear line and exit 2, before any load);
4. runs `python -m locust -f loadkit/traffic/locustfile.py` in its own session, handing it
   the run settings in `run-config.json` (no secrets: keys stay in the environment), shows
   the progress line the locustfile prints every second, copies Locust's console to
   locust.log;
5. on Ctrl-C or SIGTERM sends Locust `STOP_SIGNAL`, on which the locustfile stops the users
   the way the end of the timeline does (in-flight requests get `drain_s`, then are written
   as `aborted`), takes every worker's last records and closes requests.csv; a second
   Ctrl-C kills Locust's process group. If `loadkit run` itself dies, the kernel sends
   Locust the same signal (PR_SET_PDEATHSIG), so it drains on its own;
6. reads requests.csv (only the records), writes summary.json, prints the summary table and
   returns the exit code (1 on an SLO breach with `--fail-on-slo`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from loadkit.calibrate import calibrate_run, size_sections
from loadkit.errors import UserError
from loadkit.results import run_folder as rf
from loadkit.servers import term_with_parent
from loadkit.workload.salt import run_salt

PROGRESS_PREFIX = "##loadkit "
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Time the locustfile gives in-flight requests to finish once the timeline ends or stop is asked.
DRAIN_S = 10.0
# loadkit's own "stop and drain" signal to Locust. Not SIGTERM: Locust 2.47 installs its
# SIGTERM handler only after a headless run's shape greenlet has finished, so during a run
# SIGTERM ends Locust at once, with the requests in flight and the writer's last second.
STOP_SIGNAL = signal.SIGUSR1
# The environment variable that tells the locustfile who its parent is (to notice its death).
PARENT_PID_ENV = "LOADKIT_PARENT_PID"
# After the stop signal, how long beyond the drain the parent waits before it kills Locust
# (the master waits for its workers' last records; Locust gives workers 60 s to stop).
STOP_GRACE_S = 75.0


@dataclass(frozen=True)
class RunOptions:
    scenario: Path
    out: Path | None = None
    duration_s: float | None = None
    users: int | None = None
    web: bool = False
    web_port: int = 8089
    processes: int = 1
    fail_on_slo: bool = False
    yes: bool = False
    results_root: Path = Path("results")
    drain_s: float = DRAIN_S
    # Distributed (Locust's flags): this process is the master; workers join with `loadkit worker`.
    master: bool = False
    master_bind_host: str = "*"
    master_bind_port: int = 5557
    expect_workers: int = 1
    report: bool = True  # charts/*.png and report.html at the end (loadkit.report)
    calibrate: bool = True  # fit the target's tokens per synthesised token first (calibrate.py)
    seed: int | None = None  # overrides the scenario's seed (`loadkit run --seed N`)


@dataclass(frozen=True)
class RunConfig:
    """What the locustfile needs, written to run-config.json (never a secret)."""

    scenario_path: str
    run_dir: str
    run_id: str
    time_scale: float
    users_override: int | None
    processes: int
    endpoints: dict[str, str]  # region -> base URL
    api_key_env: str | None
    header_refs: dict[str, str]  # header -> template with ${VAR} references
    drain_s: float
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        rf.write_json(path, asdict(self))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> RunConfig:
        return cls(**json.loads(Path(path).read_text()))


# -- checks before anything is started ------------------------------------------------------


def resolve_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header values with `${VAR}` replaced from the environment; a missing variable is an error."""
    out = {}
    for name, template in headers.items():

        def sub(m: re.Match[str], header: str = name) -> str:
            value = os.environ.get(m[1])
            if value is None:
                raise UserError(f"target.headers.{header}: environment variable {m[1]} is not set")
            return value

        out[name] = _ENV_REF.sub(sub, str(template))
    return out


def api_key(api_key_env: str | None) -> str | None:
    if not api_key_env:
        return None
    value = os.environ.get(api_key_env)
    if not value:
        raise UserError(
            f"target.api_key_env: environment variable {api_key_env} is not set "
            f"(export it with the API key; loadkit never stores keys)"
        )
    return value


def secret_values(target: Any) -> list[str]:
    """The API key and the `${VAR}` header values this run sends: kept out of every file
    and every message to a worker (a missing variable is the user's mistake)."""
    if target.kind != "http":
        return []
    key = api_key(target.api_key_env)
    return ([key] if key else []) + [v for v in resolve_headers(target.headers).values() if v]


def run_config(
    scenario: Any,
    opts: RunOptions,
    run_dir: Path,
    run_id: str,
    scale: float,
    endpoints: dict[str, str],
    prompt_salt: str = "",
    sizing: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The settings every Locust process reads (and a master sends to its workers): the
    names of environment variables, never their values."""
    target = scenario.target
    return RunConfig(
        scenario_path=str(Path(scenario.source_path or opts.scenario).resolve()),
        run_dir=str(run_dir.resolve()),
        run_id=run_id,
        time_scale=scale,
        users_override=opts.users,
        processes=opts.expect_workers if opts.master else opts.processes,
        endpoints=endpoints,
        api_key_env=target.api_key_env if target.kind == "http" else None,
        header_refs={k: str(v) for k, v in target.headers.items()},
        drain_s=opts.drain_s,
        extra={
            "web": opts.web,
            "seed": opts.seed,
            "prompt_salt": prompt_salt,
            "sizing": dict(sizing or {}),
        },
    )


def with_seed(scenario: Any, seed: int | None) -> Any:
    """The scenario with `--seed N` in place of its own seed (None: unchanged)."""
    if seed is None:
        return scenario
    if not 0 <= seed <= 2**63 - 1:
        raise UserError(f"--seed must be in [0, 2**63 - 1], got {seed}")
    import dataclasses

    return dataclasses.replace(scenario, seed=seed)


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        import ipaddress

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def request_headers(api_key_env: str | None, header_refs: Mapping[str, str]) -> dict[str, str]:
    """The headers every request of the run carries: target.headers, then the API key."""
    headers = resolve_headers(header_refs)
    key = api_key(api_key_env)
    if key and not any(h.lower() in ("authorization", "api-key") for h in headers):
        headers["Authorization"] = f"Bearer {key}"
    return headers


def check_endpoints(
    scenario: Any, endpoints: Mapping[str, str], secrets: list[str], out: IO[str]
) -> None:
    """One real request per distinct endpoint before any load (`loadkit.preflight`)."""
    from loadkit.preflight import check_endpoint

    target = scenario.target
    headers = {}
    if target.kind == "http":
        headers = request_headers(target.api_key_env, target.headers)
    for url in sorted(set(endpoints.values())):
        warning = check_endpoint(url, headers, target.model, secrets)
        if warning:
            out.write(warning + "\n")


def scenario_endpoints(scenario: Any, default_url: str | None) -> dict[str, str]:
    """Region -> base URL: the region's own, else target.region_endpoints, else the target's."""
    out = {}
    for region in scenario.regions:
        url = (
            region.base_url
            or scenario.target.region_endpoints.get(region.name)
            or default_url
            or scenario.target.base_url
        )
        if not url:
            raise UserError(f"regions.{region.name}: no base_url and the target has none")
        out[region.name] = url.rstrip("/")
    return out


# -- the mock -------------------------------------------------------------------------------


@contextlib.contextmanager
def mock_endpoints(scenario: Any, folder: rf.RunFolder) -> Iterator[dict[str, str]]:
    """Start the bundled mock (one listener per region) and yield region -> URL."""
    import yaml

    from loadkit.servers import running_server

    target = scenario.target
    names = [r.name for r in scenario.regions]
    args = ["mocks", "--port", "0", "--seed", str(scenario.seed)]
    if target.mock_profile:
        args += ["--profile", target.mock_profile]
    if len(names) > 1:
        args += ["--regions", ",".join(names)]
    if target.mock_overrides:
        cfg = folder.path / "mock-config.yaml"
        cfg.write_text(yaml.safe_dump(_plain(target.mock_overrides), sort_keys=False))
        args += ["--config", str(cfg)]
    with running_server("mock", args) as server:
        if len(names) == 1:
            yield {names[0]: server.url}
        else:
            yield _mock_region_urls(server.url, names)


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _mock_region_urls(front: str, names: list[str]) -> dict[str, str]:
    import urllib.request

    # a mock started with LOADKIT_MOCK_ADMIN_TOKEN in the environment wants it back
    token = os.environ.get("LOADKIT_MOCK_ADMIN_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(front + "/admin/config", headers=headers)
    with urllib.request.urlopen(request, timeout=5) as resp:
        cfg = json.load(resp)
    regions = cfg.get("regions", {})
    out = {}
    for name in names:
        info = regions.get(name) if isinstance(regions, Mapping) else None
        out[name] = (info or {}).get("url") or front
    return out


# -- Locust subprocess ----------------------------------------------------------------------


def locust_command(
    opts: RunOptions, folder: rf.RunFolder, host: str, locustfile: Path = LOCUSTFILE
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--host",
        host,
        "--csv",
        str(folder.locust_csv_prefix),
        "--html",
        str(folder.locust_html),
        "--exit-code-on-error",
        "0",
        "--stop-timeout",
        f"{opts.drain_s:g}",
        "--loglevel",
        "INFO",
    ]
    if opts.web:
        cmd += ["--web-host", "127.0.0.1", "--web-port", str(opts.web_port), "--autostart"]
    else:
        cmd += ["--headless", "--only-summary"]
    if opts.master:
        cmd += ["--master", "--master-bind-host", opts.master_bind_host]
        cmd += ["--master-bind-port", str(opts.master_bind_port)]
        # Rebalancing: a worker that goes missing hands its users to the others at once.
        cmd += ["--expect-workers", str(opts.expect_workers), "--enable-rebalancing"]
    elif opts.processes > 1:
        # A private master port on loopback: never Locust's default 5557, where workers of
        # another run on this machine would join ours.
        port = str(_free_port())
        cmd += ["--processes", str(opts.processes), "--master-bind-host", "127.0.0.1"]
        cmd += ["--master-bind-port", port, "--master-host", "127.0.0.1", "--master-port", port]
    return cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Progress:
    """Shows the locustfile's progress events as one line (rewritten in place on a terminal)."""

    def __init__(self, out: IO[str]):
        self.out = out
        self.tty = out.isatty()
        self.last: dict[str, Any] = {}
        self._last_plain = 0.0
        self.events: list[dict[str, Any]] = []
        self.listeners: list[Any] = []  # callables given every event (the chaos drill)

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        for listener in self.listeners:
            listener(event)
        if kind == "progress":
            self.last = event
            line = (
                f"{event['elapsed_s']:6.0f}s of {event['total_s']:.0f}s  "
                f"users {event['users']:>4}  {event['rps']:7.1f} req/s  "
                f"requests {event['requests']}  errors {event['errors']}"
            )
            if self.tty:
                self.out.write("\r" + line + "   ")
                self.out.flush()
            elif time.monotonic() - self._last_plain >= 5.0:
                self._last_plain = time.monotonic()
                self.out.write(line + "\n")
                self.out.flush()
        else:
            self.events.append(event)
            self.newline()
            if event.get("message"):
                self.out.write(f"{event['message']}\n")
                self.out.flush()

    def newline(self) -> None:
        if self.tty and self.last:
            self.out.write("\n")
            self.last = {}


def _pump(proc: subprocess.Popen[str], log: IO[str], progress: _Progress) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(PROGRESS_PREFIX):
            try:
                progress.handle(json.loads(line[len(PROGRESS_PREFIX) :]))
            except (ValueError, KeyError):
                log.write(line)
            continue
        log.write(line)
        log.flush()


@contextlib.contextmanager
def _signals_to_interrupt() -> Iterator[None]:
    """SIGTERM to `loadkit run` behaves like Ctrl-C: stop, finish the files and the summary."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _run_locust(
    cmd: list[str],
    env: dict[str, str],
    folder: rf.RunFolder,
    out: IO[str],
    drill: Any = None,
    drain_s: float = DRAIN_S,
) -> tuple[int, bool, _Progress]:
    """Run Locust to the end; returns (exit code, interrupted, progress).

    The first Ctrl-C/SIGTERM sends Locust `STOP_SIGNAL` (a drain, like the timeline's end)
    once the locustfile said it handles it (`ready`); before that nothing runs yet and
    SIGTERM ends it. A second Ctrl-C, or a drain that overruns by `STOP_GRACE_S`, kills
    Locust's process group: the writer writes whole lines, so requests.csv stays readable.
    """
    progress = _Progress(out)
    if drill is not None:  # the fault timeline follows Locust's clock and may stop the run
        progress.listeners.append(drill.on_event)
    interrupted = False
    with open(folder.locust_log, "a", encoding="utf-8") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, not Locust directly
            bufsize=1,
            preexec_fn=term_with_parent(STOP_SIGNAL),
        )
        if drill is not None:
            drill.attach(proc)
        pump = threading.Thread(target=_pump, args=(proc, log, progress), daemon=True)
        pump.start()
        try:
            with _signals_to_interrupt():
                deadline: float | None = None
                while True:
                    try:
                        timeout = None if deadline is None else max(deadline - time.monotonic(), 0)
                        rc = proc.wait(timeout)
                        break
                    except subprocess.TimeoutExpired:
                        late = drain_s + STOP_GRACE_S
                        out.write(f"Locust did not stop within {late:g} s: killed\n")
                        out.flush()
                        deadline = None
                        _signal(proc, signal.SIGKILL)
                    except KeyboardInterrupt:
                        if interrupted:  # second Ctrl-C: no more waiting
                            out.write("killing Locust: requests in flight are not recorded\n")
                            out.flush()
                            _signal(proc, signal.SIGKILL)
                            continue
                        interrupted = True
                        progress.newline()
                        out.write(
                            f"stopping: in-flight requests get {drain_s:g} s to finish, then "
                            "the files are closed (Ctrl-C again to kill)\n"
                        )
                        out.flush()
                        ready = any(e.get("event") == "ready" for e in list(progress.events))
                        _signal(proc, STOP_SIGNAL if ready else signal.SIGTERM)
                        deadline = time.monotonic() + drain_s + STOP_GRACE_S
        finally:
            if proc.poll() is None:
                _signal(proc, signal.SIGKILL)
                proc.wait()
            _reap_group(proc.pid)
            pump.join(timeout=5)
    progress.newline()
    return rc, interrupted, progress


def _reap_group(pgid: int, grace_s: float = 3.0) -> None:
    """End what is left of Locust's process group (its forked workers) once the master is gone.

    By then the master has every worker's last batch; a worker left waiting for its next
    instructions would otherwise outlive the run.
    """
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _signal(proc: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        if sig == signal.SIGKILL:
            os.killpg(proc.pid, sig)  # Locust's worker processes too
        else:
            proc.send_signal(sig)


# -- the whole run --------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """What one run produced: for callers that run scenarios programmatically (capacity)."""

    exit_code: int
    folder: Path
    stop_reason: str
    summary: dict[str, Any] | None  # summary.json's content; None if nothing was recorded


def run(opts: RunOptions, out: IO[str] | None = None) -> int:
    """`loadkit run`; returns the process exit code (UserError for a user's mistake)."""
    return run_scenario(opts, out).exit_code


def run_scenario(opts: RunOptions, out: IO[str] | None = None) -> RunResult:
    """The whole run (see the module docstring); raises UserError for a user's mistake."""
    from loadkit.scenario import load_scenario
    from loadkit.traffic.shape import time_scale

    out = out or sys.stdout
    scenario = with_seed(load_scenario(opts.scenario), opts.seed)
    if opts.processes < 1:
        raise UserError(f"--processes must be at least 1, got {opts.processes}")
    if not opts.drain_s >= 0:
        raise UserError(f"--drain must be 0 s or more, got {opts.drain_s:g}")
    if opts.master:
        from loadkit.traffic.distributed import check_master_options

        check_master_options(opts)
    if opts.users is not None and type(scenario.load).__name__ != "ClosedLoad":
        raise UserError(
            "--users sets the peak of a closed-loop scenario (load: type: closed); this one "
            "sets arrival rates: change them in the scenario instead"
        )
    try:
        scale = time_scale(scenario.duration_s, opts.duration_s)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    target = scenario.target
    secrets = secret_values(target)
    if target.kind == "http":
        endpoints = scenario_endpoints(scenario, None)
        remote = sorted({u for u in endpoints.values() if not is_loopback(u)})
        if remote:
            _cost_gate(scenario, scale, remote, opts, out)
    run_id = uuid.uuid4().hex[:12]
    salt = run_salt(run_id) if scenario.prompt_cache == "cold" else ""
    folder_path = opts.out or rf.default_run_dir(opts.results_root, scenario.name)
    folder = rf.prepare(folder_path)
    started = rf.utc_now_iso()
    if scenario.source_path is not None:
        rf.write_scenario_copy(folder, Path(scenario.source_path), secrets)
    with contextlib.ExitStack() as stack:
        if target.kind == "mock":
            endpoints = stack.enter_context(mock_endpoints(scenario, folder))
        check_endpoints(scenario, endpoints, secrets, out)
        sizing = calibrate_run(scenario, endpoints, folder.path, out, opts.calibrate)
        upstream = dict(endpoints)
        chaos = None
        if scenario.faults:  # a drill: users -> chaos proxy (a listener per region) -> target
            from loadkit.chaos.drill import drill

            chaos = stack.enter_context(
                drill(
                    scenario, endpoints, folder.path / "faults.csv", folder.requests_csv, scale, out
                )
            )
            endpoints = chaos.endpoints
        cfg = run_config(scenario, opts, folder.path, run_id, scale, endpoints, salt, sizing)
        cfg.write(folder.run_config)
        rf.write_json(
            folder.environment_json,
            rf.environment_info(
                scenario.seed,
                run_id,
                {
                    "scenario": scenario.name,
                    "started_at": started,
                    "target": target.kind,
                    "endpoints": {k: rf.safe_url(v) for k, v in endpoints.items()},
                    "upstream_endpoints": {k: rf.safe_url(v) for k, v in upstream.items()},
                    "chaos_proxy": chaos.proxy.url if chaos is not None else None,
                    "mock_profile": target.mock_profile if target.kind == "mock" else None,
                    "time_scale": scale,
                    "duration_s": scenario.duration_s * scale,
                    "users_override": opts.users,
                    "processes": opts.processes,
                    "prompt_cache": scenario.prompt_cache,
                    "prompt_salt": salt,
                },
            ),
        )
        host = next(iter(endpoints.values()))
        env = {
            **os.environ,
            "LOADKIT_RUN_CONFIG": str(folder.run_config.resolve()),
            PARENT_PID_ENV: str(os.getpid()),
        }
        locustfile = LOCUSTFILE
        if opts.master:
            from loadkit.traffic.distributed import master_setup

            locustfile = master_setup(
                stack, opts, folder.run_config, scenario, endpoints, out, secrets
            )
        out.write(f"run {run_id}: {scenario.name} -> {folder.path}\n")
        if opts.web:
            out.write(f"Locust web UI: http://127.0.0.1:{opts.web_port}\n")
        out.flush()
        t0 = time.monotonic()
        rc, interrupted, progress = _run_locust(
            locust_command(opts, folder, host, locustfile), env, folder, out, chaos, opts.drain_s
        )
        wall_s = time.monotonic() - t0
    return finish(
        folder,
        scenario,
        opts,
        rc,
        interrupted,
        progress.events,
        started,
        wall_s,
        out,
        run_id,
        abort_reason=chaos.abort_reason if chaos is not None else None,
        prompt_salt=salt,
    )


def _cost_gate(
    scenario: Any, scale: float, remote: list[str], opts: RunOptions, out: IO[str]
) -> None:
    est = estimate_cost(scenario, scale)
    where = ", ".join(rf.safe_url(u) for u in remote)
    line = f"target {where} is not on this machine; estimated cost of this run: {est}"
    out.write(line + "\n")
    budget = scenario.budget
    if opts.yes or budget.max_usd is not None or budget.max_requests is not None:
        return
    raise UserError(
        "this run sends paid traffic: pass --yes to go ahead, or set budget: "
        "(max_usd / max_requests) in the scenario"
    )


def estimate_cost(scenario: Any, scale: float) -> str:
    """The validate plan's estimated cost for the compressed run, as text."""
    from loadkit.scenario.plan import plan

    total = plan(scenario).total()
    requests = total.requests * scale  # rates are kept; a compressed run sends fewer
    if total.cost_usd is None:
        return f"unknown (no pricing in the scenario) for about {requests:.0f} requests"
    return f"${total.cost_usd * scale:.2f} for about {requests:.0f} requests"


def finish(
    folder: rf.RunFolder,
    scenario: Any,
    opts: RunOptions,
    locust_rc: int,
    interrupted: bool,
    events: list[dict[str, Any]],
    started: str,
    wall_s: float,
    out: IO[str],
    run_id: str = "",
    abort_reason: str | None = None,
    prompt_salt: str = "",
) -> RunResult:
    from loadkit.analysis.served import served_lines
    from loadkit.analysis.summary import format_table, summarize
    from loadkit.results.reader import read_records

    ended = next((e for e in reversed(events) if e.get("event") == "ended"), {})
    stop = next((e for e in events if e.get("event") == "stop"), {})
    if interrupted and any(e.get("event") == "timeline_done" for e in events):
        interrupted = False  # --web: Ctrl-C after the timeline is the normal way to finish
    reason = "interrupted" if interrupted else stop.get("reason") or ended.get("reason")
    if not reason:
        reason = "completed" if locust_rc == 0 else f"locust exited with code {locust_rc}"
    if abort_reason:  # the drill's abort condition stopped the run (SIGTERM to Locust)
        reason = f"aborted: {abort_reason}"
    elapsed_s = float(ended.get("elapsed_s") or wall_s)
    if not folder.requests_csv.exists():
        out.write(f"no records were written; see {folder.locust_log}\n")
        _tail(folder.locust_log, out)
        return RunResult(2 if locust_rc else 1, folder.path, reason, None)
    cols = read_records(folder.requests_csv)
    summary = summarize(cols, slo=scenario.slo)
    doc = {
        "run_id": ended.get("run_id") or run_id,
        "scenario": scenario.name,
        "started_at": started,
        "ended_at": rf.utc_now_iso(),
        "stop_reason": reason,
        "locust_exit_code": locust_rc,
        "elapsed_s": round(elapsed_s, 3),
        "records_truncated": bool(cols.truncated),
        "seed": scenario.seed,
        "prompt_cache": scenario.prompt_cache,
        "prompt_salt": prompt_salt,
        **summary,
    }
    if ended.get("workers") is not None:  # a distributed run: each worker, and who went missing
        doc["workers"] = ended["workers"]
    faults_csv = folder.path / "faults.csv"
    if faults_csv.exists():
        from loadkit.analysis.drill import drill_summary
        from loadkit.results.faults_schema import read_fault_events

        doc["chaos"] = drill_summary(cols, read_fault_events(faults_csv), scenario.slo.error_rate)
    doc.update(size_sections(folder.path, cols, scenario, out))
    rf.write_json(folder.summary_json, doc)
    out.write("\n" + format_table(summary) + "\n")
    out.write("".join(f"{line}\n" for line in served_lines(doc)))
    if doc.get("workers"):
        from loadkit.traffic.distributed import worker_lines

        out.write("".join(f"{line}\n" for line in worker_lines(doc["workers"])))
    out.write(f"stopped: {reason}\n" if reason != "completed" else "")
    if opts.report:
        _write_report(folder, out)
    out.write(f"run folder: {folder.path}\n")
    out.flush()
    if locust_rc not in (0,) and not interrupted:
        _tail(folder.locust_log, out)
        code = 2 if summary["attempts"] == 0 else 1
    elif abort_reason:
        code = 1
    elif opts.fail_on_slo and summary.get("slo", {}).get("breached"):
        out.write(f"SLO breached: {', '.join(summary['slo']['breached'])}\n")
        code = 1
    else:
        code = 130 if interrupted else 0
    return RunResult(code, folder.path, reason, doc)


def _write_report(folder: rf.RunFolder, out: IO[str]) -> None:
    """charts/*.png and report.html; a failed report never costs the run its exit code."""
    import traceback

    from loadkit.report.build import build_report, report_line

    out.flush()
    try:
        result = build_report(folder.path)
    except UserError as exc:
        out.write(f"report: not written ({exc})\n")
        return
    except Exception:  # a bug in the report: show it, keep the run's own result
        traceback.print_exc()
        out.write(f"report: failed; retry with: loadkit report {folder.path}\n")
        return
    out.write(report_line(result) + "\n")


def _tail(path: Path, out: IO[str], n: int = 15) -> None:
    with contextlib.suppress(OSError):
        lines = path.read_text(errors="replace").splitlines()[-n:]
        out.write("".join(f"  | {x}\n" for x in lines))
