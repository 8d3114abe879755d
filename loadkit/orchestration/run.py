"""`loadkit run`: the orchestration around one Locust run.

The parent process never imports Locust (gevent monkey-patches sockets at import); it:
1. loads the scenario, resolves the API key and header variables (a missing one: exit 2),
   and for a target off loopback prints the estimated cost and requires `--yes` unless the
   scenario has a budget;
2. creates the run folder (scenario copy with secrets redacted, environment.json);
3. starts the bundled mock when the target is the mock (`loadkit.serving.launch`), then sends one
   real request to every endpoint (`loadkit.orchestration.preflight`:
   unreachable, 401, 403 or 404 is one
   clear line and exit 2, before any load);
4. runs `python -m locust -f loadkit/traffic/locustfile.py` in its own session
   (`loadkit.orchestration.run_locust`), handing it the run settings in `run-config.json`
   (`loadkit.traffic.config.RunConfig`; no secrets: keys stay in the environment), shows
   the progress line the locustfile prints every second, copies Locust's console to
   locust.log;
5. on Ctrl-C or SIGTERM sends Locust `STOP_SIGNAL`, on which the locustfile stops the users
   the way the end of the timeline does (in-flight requests get `drain_s`, then are written
   as `aborted`), takes every worker's last records and closes requests.csv; a second
   Ctrl-C kills Locust's process group. If `loadkit run` itself dies, the kernel sends
   Locust the same signal (PR_SET_PDEATHSIG), so it drains on its own;
6. reads requests.csv (only the records), writes summary.json, prints the summary table and
   returns the exit code (1 on an SLO breach with `--fail-on-slo`;
   `loadkit.orchestration.run_summary`).

The options are `loadkit.orchestration.run_options.RunOptions`; a `--master` run's parent side is
`loadkit.orchestration.run_distributed`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from loadkit.errors import UserError
from loadkit.orchestration.calibrate import calibrate_run
from loadkit.orchestration.run_locust import locust_command, run_locust
from loadkit.orchestration.run_options import RunOptions
from loadkit.orchestration.run_summary import DISK_FULL, RunResult, finish, no_space
from loadkit.results import run_folder as rf
from loadkit.traffic.config import (
    LOCUSTFILE,
    PARENT_PID_ENV,
    RUN_CONFIG_ENV,
    RunConfig,
    is_loopback,
    secret_values,
    with_seed,
)
from loadkit.workload.salt import run_salt

if TYPE_CHECKING:
    from loadkit.chaos.drill import Drill

__all__ = ["RunOptions", "RunResult", "run", "run_scenario"]


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


def check_endpoints(
    scenario: Any, endpoints: Mapping[str, str], secrets: list[str], out: IO[str]
) -> None:
    """One real request per distinct endpoint, failover ones included, before any load
    (`orchestration.preflight`), each in its own API."""
    from loadkit.orchestration.preflight import check_endpoint
    from loadkit.traffic.config import api_key, resolve_headers

    seen: set[tuple[str, str, str, str]] = set()
    for route in sorted(endpoints):
        ep = scenario.route_endpoint(route, endpoints[route])
        model = ep.model or scenario.target.model
        ident = (ep.base_url, ep.api, model, ep.deployment)
        if ident in seen:
            continue
        seen.add(ident)
        named = route if (ep.name or len(endpoints) > 1) else ""
        warning = check_endpoint(
            ep,
            scenario.target.model,
            resolve_headers(ep.headers),
            api_key(ep.key_env),
            secrets,
            route=named,
        )
        if warning:
            out.write(warning + "\n")


def scenario_endpoints(scenario: Any, default_url: str | None) -> dict[str, str]:
    """Route -> base URL. A region: its own, else its named endpoint's, else
    target.region_endpoints, else the target's. A named endpoint: its own (for a mock
    target, one without a base URL is a listener of the mock's: see `mock_endpoints`)."""
    out = {}
    named = scenario.endpoints
    for region in scenario.regions:
        ref = named.get(region.endpoint) if region.endpoint else None
        url = (
            region.base_url
            or (ref.endpoint.base_url if ref else None)
            or scenario.target.region_endpoints.get(region.name)
            or default_url
            or scenario.target.base_url
        )
        if not url:
            raise UserError(f"regions.{region.name}: no base_url and the target has none")
        out[region.name] = url.rstrip("/")
    for name, ep in named.items():
        url = ep.endpoint.base_url or (default_url or "")
        if url:
            out[name] = url.rstrip("/")
    return out


# -- the mock -------------------------------------------------------------------------------


@contextlib.contextmanager
def mock_endpoints(scenario: Any, folder: rf.RunFolder) -> Iterator[dict[str, str]]:
    """Start the bundled mock (one listener per region) and yield region -> URL."""
    import yaml

    from loadkit.serving.launch import running_server

    target = scenario.target
    names = [r.name for r in scenario.regions]
    # named endpoints without a URL of their own are listeners of the mock's too
    names += [n for n, ep in scenario.endpoints.items() if not ep.endpoint.base_url]
    args = ["mocks", "--port", "0", "--seed", str(scenario.seed)]
    if target.mock_profile:
        args += ["--profile", target.mock_profile]
    if len(names) > 1:
        args += ["--regions", ",".join(names)]
    if target.mock_overrides:
        cfg = folder.mock_config
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


# -- the whole run --------------------------------------------------------------------------


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
        from loadkit.orchestration.run_distributed import check_master_options

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
    secrets = secret_values(target, scenario.endpoints)
    endpoints: dict[str, str] = {}  # the mock's, once started
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
    try:
        if scenario.source_path is not None:
            rf.write_scenario_copy(folder, Path(scenario.source_path), secrets)
        return _run_in(
            folder, scenario, opts, out, scale, run_id, salt, started, secrets, endpoints
        )
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        raise no_space(folder, exc) from None


def _run_in(
    folder: rf.RunFolder,
    scenario: Any,
    opts: RunOptions,
    out: IO[str],
    scale: float,
    run_id: str,
    salt: str,
    started: str,
    secrets: list[str],
    endpoints: dict[str, str],
) -> RunResult:
    """The run inside its folder: servers, the start-up check, calibration, Locust, the end."""
    target = scenario.target
    with contextlib.ExitStack() as stack:
        if target.kind == "mock":
            served = stack.enter_context(mock_endpoints(scenario, folder))
            # named endpoints with a URL of their own (a real server beside the mock)
            endpoints = {**scenario_endpoints(scenario, next(iter(served.values()))), **served}
        upstream = dict(endpoints)

        def start_drill() -> Drill:
            from loadkit.chaos.drill import drill

            return stack.enter_context(
                drill(
                    scenario,
                    upstream,
                    folder.faults_csv,
                    folder.requests_csv,
                    scale,
                    out,
                    hits_csv=folder.fault_hits_csv,
                )
            )

        chaos = None
        if target.upstreams:
            # a gateway's config points at loadkit's upstream listeners: they must be
            # listening before the first request (the start-up check) reaches the gateway
            chaos = start_drill()
        check_endpoints(scenario, endpoints, secrets, out)
        sizing = calibrate_run(scenario, endpoints, folder.path, out, opts.calibrate)
        if scenario.faults and chaos is None:
            chaos = start_drill()  # a drill: users -> chaos proxy (a listener per region)
        if chaos is not None:
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
            RUN_CONFIG_ENV: str(folder.run_config.resolve()),
            PARENT_PID_ENV: str(os.getpid()),
        }
        locustfile = LOCUSTFILE
        if opts.master:
            from loadkit.orchestration.run_distributed import master_setup

            locustfile = master_setup(
                stack, opts, folder.run_config, scenario, endpoints, out, secrets
            )
        out.write(f"run {run_id}: {scenario.name} -> {folder.path}\n")
        if opts.web:
            out.write(f"Locust web UI: http://127.0.0.1:{opts.web_port}\n")
        out.flush()
        t0 = time.monotonic()
        rc, interrupted, progress = run_locust(
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
