"""What `locust -f` loads for `loadkit run` (started by `loadkit.traffic.runner`).

Locust needs its User and LoadTestShape classes at import, so this module reads the run
settings named by `LOADKIT_RUN_CONFIG` and builds them when it is imported (that is its one
job; nothing else imports it). With `--processes N` Locust imports this file once and forks
the workers afterwards, so every process has the same classes and the same seeded plan.

Roles (Locust's runner decides): the local runner or the master owns requests.csv (one
RecordWriter; workers ship their records to it, see `shipping`), prints the progress line
(`##loadkit {json}` on stdout, read by the runner), drives the LoadTestShape and ends the
run; a worker runs users and ships records. A run ends when the timeline is over, when the
budget is spent, or on SIGTERM; each way stops the users first (in-flight requests get
`drain_s` to finish), then waits for every worker's last batch, then closes the file.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from locust import User, constant, events, task
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, MasterRunner, WorkerRunner

from loadkit.results.writer import RecordWriter
from loadkit.traffic.budget import BudgetGuard, BudgetLimits
from loadkit.traffic.context import RunContext
from loadkit.traffic.runner import PROGRESS_PREFIX, RunConfig, api_key, resolve_headers
from loadkit.traffic.shape import shape_class
from loadkit.traffic.shipping import MESSAGE, RecordReceiver, RecordShipper
from loadkit.traffic.timeline import ClosedTimeline, OpenTimeline, is_open

log = logging.getLogger("loadkit")


def emit(event: str, **data: Any) -> None:
    """One machine-readable line for the runner (progress, stop reason, end of run)."""
    sys.stdout.write(PROGRESS_PREFIX + json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()


class LoadkitApp:
    """Per-process state of one run; hooks into Locust's events."""

    def __init__(self, cfg: RunConfig):
        from loadkit.scenario import load_scenario

        self.cfg = cfg
        self.scenario = sc = load_scenario(cfg.scenario_path)
        headers = resolve_headers(dict(cfg.header_refs))
        key = api_key(cfg.api_key_env)
        if key and not any(h.lower() in ("authorization", "api-key") for h in headers):
            headers["Authorization"] = f"Bearer {key}"
        self.ctx = RunContext(
            scenario=sc,
            endpoints=dict(cfg.endpoints),
            headers=headers,
            run_id=cfg.run_id,
            seed=sc.seed,
            rtt_ms={r.name: r.rtt_ms for r in sc.regions},
        )
        self.open = is_open(sc)
        self.timeline: Any
        if self.open:
            self.timeline = OpenTimeline(sc, cfg.time_scale, cfg.processes)
            self.user_classes: list[type] = [self._driver_class()]
        else:
            from loadkit.traffic.users import build_user_classes

            self.timeline = ClosedTimeline(sc, cfg.time_scale, cfg.users_override)
            self.user_classes = list(build_user_classes(sc, self.ctx))
        self.shape = shape_class(self._tick, on_end=self._end_of_timeline, name="LoadkitShape")
        self.runner: Any = None
        self.role = "local"
        self.writer: RecordWriter | None = None
        self.receiver: RecordReceiver | None = None
        self.shipper: RecordShipper | None = None
        self.total_guard = BudgetGuard(BudgetLimits(sc.budget.max_usd, sc.budget.max_requests))
        self.exhausted_workers: set[str] = set()
        self.stop_reason = ""
        self.drivers: list[Any] = []
        self.rows = 0
        self.errors = 0
        self._ended = False

    # -- Locust hooks ---------------------------------------------------------------------------

    def install(self) -> None:
        events.init_command_line_parser.add_listener(self.on_parser)
        events.init.add_listener(self.on_init)
        events.test_start.add_listener(self.on_test_start)
        events.test_stopping.add_listener(self.on_test_stopping)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)

    def on_parser(self, parser: Any, **_: Any) -> None:
        parser.add_argument("--loadkit-t0", type=float, default=0.0, include_in_web_ui=False)

    def on_init(self, environment: Any, runner: Any, **_: Any) -> None:
        self.runner = runner
        self.ctx.environment = environment
        if isinstance(runner, WorkerRunner):
            self.role = "worker"
            self.shipper = RecordShipper(runner.send_message, worker="?", on_record=self._count)
            self.ctx.sink = self.shipper
            return
        self.role = "master" if isinstance(runner, MasterRunner) else "local"
        self.writer = RecordWriter(os.path.join(self.cfg.run_dir, "requests.csv"))
        if self.role == "master":
            self.receiver = RecordReceiver(self.writer.write_line)
            runner.register_message(MESSAGE, self._on_batch)
        else:
            self.ctx.sink = self._local_sink
        runner.greenlet.spawn(self._progress_loop)

    def on_test_start(self, environment: Any, **_: Any) -> None:
        opts = environment.parsed_options
        self.stop_reason = ""
        self.ctx.stopping = False
        if self.role == "worker":
            t0 = float(getattr(opts, "loadkit_t0", 0.0) or 0.0)
            # perf_counter is CLOCK_MONOTONIC on Linux: one clock for all local processes.
            now = time.perf_counter()
            self.ctx.run_t0 = t0 if now - 60.0 < t0 < now + 5.0 else now
            index = max(int(getattr(self.runner, "worker_index", 0)), 0) % self.cfg.processes
            self.ctx.worker = f"w{index}"
            self.ctx.guard = BudgetGuard(self.total_guard.limits.share(index, self.cfg.processes))
            assert self.shipper is not None
            self.shipper.worker = self.ctx.worker
            self.shipper.start()
            return
        # Open loop: the schedule starts a moment later, once every process has its driver
        # running (workers get the spawn message and build their client first).
        lead = (0.5 if self.role == "master" else 0.1) if self.open else 0.0
        self.ctx.run_t0 = time.perf_counter() + lead
        if opts is not None:
            opts.loadkit_t0 = self.ctx.run_t0  # reaches the workers with the spawn message
        self.ctx.guard = self.total_guard
        if self.receiver is not None:
            self.receiver.reset_finals()

    def on_test_stopping(self, environment: Any, **_: Any) -> None:
        self.ctx.stopping = True
        for driver in list(self.drivers):
            driver.stop()

    def on_test_stop(self, environment: Any, **_: Any) -> None:
        if self.role == "worker":
            if self.shipper is not None:
                self.shipper.finish()
            return
        if self.receiver is not None:
            self.receiver.wait_final(len(self.receiver.workers), timeout_s=self.cfg.drain_s + 5)
        if self.writer is not None:
            self.writer.flush()

    def on_quitting(self, environment: Any, **_: Any) -> None:
        if self.role == "worker":
            return
        runner = self.runner
        if runner is not None and runner.state not in (
            STATE_STOPPED,
            STATE_STOPPING,
            STATE_CLEANUP,
        ):
            self.stop_reason = self.stop_reason or "interrupted"
            runner.stop()
        self.end()

    # -- the shape ------------------------------------------------------------------------------

    def _tick(self, t_s: float) -> Any:
        if self.stop_reason:
            return None
        if self.open:
            # The schedule's clock, not the shape's: it starts `lead` after the shape.
            t_run = self.elapsed_s() if self.ctx.run_t0 else 0.0
            return self.timeline.tick(t_run, self.user_classes[0])
        return self.timeline.tick(t_s)

    def _end_of_timeline(self) -> None:
        """Shape greenlet: stop users and drain records before Locust quits."""
        if self.runner is not None and self.runner.state not in (STATE_STOPPED, STATE_STOPPING):
            self.runner.stop()
        if self.cfg.extra.get("web"):
            if self.writer is not None:
                self.writer.flush()
            emit(
                "timeline_done",
                message="the timeline is over; Locust's web UI stays up for a look: "
                "press Ctrl-C to finish the run folder and the summary",
            )

    # -- records and budget ---------------------------------------------------------------------

    def _count(self, record: Any) -> None:
        self.rows += 1
        if record.outcome != "ok":
            self.errors += 1
        guard = self.ctx.guard
        guard.add_cost(record.cost_usd)
        if guard.exhausted and not self.stop_reason:
            if self.role == "worker":
                self.stop_reason = guard.reason
                assert self.shipper is not None
                self.shipper.exhausted = True
                self.shipper.reason = guard.reason
            else:
                self.request_stop(guard.reason)

    def _local_sink(self, record: Any) -> None:
        assert self.writer is not None
        self.writer.write(record)
        self._count(record)

    def _on_batch(self, environment: Any = None, msg: Any = None, **_: Any) -> None:
        assert self.receiver is not None
        before = self.receiver.rows
        self.receiver(environment=environment, msg=msg)
        self.rows += self.receiver.rows - before
        self.errors += int(msg.data.get("errors", 0))
        self.total_guard.add_cost(float(msg.data.get("cost", 0.0)))
        if msg.data.get("exhausted"):
            self.exhausted_workers.add(str(msg.data["worker"]))
        if self.total_guard.exhausted:
            self.request_stop(self.total_guard.reason)
        elif len(self.exhausted_workers) >= max(self.cfg.processes, 1):
            self.request_stop(str(msg.data.get("reason") or "budget reached on every worker"))

    def request_stop(self, reason: str) -> None:
        """End the run at the shape's next tick (at most a second later)."""
        if self.stop_reason:
            return
        self.stop_reason = reason
        self.ctx.stopping = True
        emit("stop", reason=reason, message=f"stopping: {reason}")

    # -- open loop ------------------------------------------------------------------------------

    def _driver_class(self) -> type:
        app = self

        class OpenLoopDriver(User):
            """Fires this process's share of the open-loop schedule (one per process)."""

            wait_time = constant(1)

            def __init__(self, environment: Any) -> None:
                super().__init__(environment)
                self._done = False

            @task
            def drive(self) -> None:
                if self._done:
                    return
                self._done = True
                app.run_driver(self)

        return OpenLoopDriver

    def run_driver(self, user: Any) -> None:
        from loadkit.traffic.openloop import OpenLoopScheduler, partition
        from loadkit.traffic.opensessions import SessionRunner

        index = max(int(getattr(self.runner, "worker_index", 0)), 0)
        n = max(self.cfg.processes, 1)
        plan = self.timeline.plan
        times, idx = partition(plan.t_s, index % n, n)
        sessions = SessionRunner(plan, self.ctx)
        sched = OpenLoopScheduler(
            times,
            sessions.run,
            run_t0=self.ctx.run_t0,
            max_in_flight=self.timeline.max_in_flight,
            indices=idx,
            admit=self.ctx.admit,
        )
        self.drivers.append(sched)
        try:
            sched.run()
            if self.ctx.guard.reason and self.role != "worker":
                self.request_stop(self.ctx.guard.reason)
            sched.drain(self.cfg.drain_s)
        finally:
            sched.drain(0)
            self.drivers.remove(sched)

    # -- ending ---------------------------------------------------------------------------------

    def elapsed_s(self) -> float:
        t0 = self.ctx.run_t0
        return 0.0 if not t0 else max(time.perf_counter() - t0, 0.0)

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self.writer is not None:
            self.writer.close()
        emit(
            "ended",
            reason=self.stop_reason or "completed",
            elapsed_s=round(self.elapsed_s(), 3),
            run_id=self.cfg.run_id,
            rows=self.writer.rows_written if self.writer is not None else 0,
            duplicates=self.receiver.duplicates if self.receiver is not None else 0,
        )

    def _progress_loop(self) -> None:
        import gevent

        total = round(self.timeline.duration_s, 1)
        while not self._ended:
            gevent.sleep(1.0)
            if not self.ctx.run_t0 or not self.cfg.progress:
                continue
            stats = self.runner.stats.total
            emit(
                "progress",
                elapsed_s=round(self.elapsed_s(), 1),
                total_s=total,
                users=self.runner.user_count,
                rps=round(stats.current_rps, 2),
                requests=self.rows,
                errors=self.errors,
            )


def _load() -> LoadkitApp:
    path = os.environ.get("LOADKIT_RUN_CONFIG")
    if not path:
        sys.stderr.write("error: this locustfile is run by `loadkit run SCENARIO`\n")
        sys.exit(2)
    app = LoadkitApp(RunConfig.read(path))
    app.install()
    return app


APP = _load()
globals().update({cls.__name__: cls for cls in APP.user_classes})
LoadkitShape = APP.shape
