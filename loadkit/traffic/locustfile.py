"""What `locust -f` loads for `loadkit run` (started by `loadkit.orchestration.run_locust`).

Locust needs its User and LoadTestShape classes at import, so this module reads the run
settings named by `LOADKIT_RUN_CONFIG` and builds them when it is imported (that is its one
job; nothing else imports it). With `--processes N` Locust imports this file once and forks
the workers afterwards, so every process has the same classes and the same seeded plan.

Roles (Locust's runner decides): the local runner or the master owns requests.csv (one
RecordWriter; workers ship their records to it, see `shipping`), prints the progress line
(`##loadkit {json}` on stdout, read by the runner), drives the LoadTestShape and ends the
run; a worker runs users and ships records. A run ends when the timeline is over, when the
budget is spent, or on `STOP_SIGNAL` (the runner's Ctrl-C, SIGTERM, a chaos abort, or the
kernel's signal when `loadkit run` died); each way stops the users first (in-flight
requests get `drain_s` to finish, the rest are written as `aborted`), then waits for every
worker's last batch, then closes the file.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from locust import User, constant, events, task
from locust.runners import (
    STATE_CLEANUP,
    STATE_MISSING,
    STATE_STOPPED,
    STATE_STOPPING,
    MasterRunner,
    WorkerRunner,
)

from loadkit.results.writer import RecordWriter
from loadkit.traffic.arrivals import Tally
from loadkit.traffic.budget import BudgetGuard, BudgetLimits
from loadkit.traffic.config import (
    PARENT_PID_ENV,
    PROGRESS_PREFIX,
    RUN_CONFIG_ENV,
    STOP_SIGNAL,
    WORKER_REGION_ENV,
    RunConfig,
    with_seed,
)
from loadkit.traffic.context import RunContext
from loadkit.traffic.distributed import (
    ASSIGN,
    HELLO,
    SWITCH_LEAD_S,
    WorkerBook,
    split_regions,
)
from loadkit.traffic.gctune import quiet_gc
from loadkit.traffic.shape import shape_class
from loadkit.traffic.shipping import MESSAGE, RecordReceiver, RecordShipper
from loadkit.traffic.timeline import ClosedTimeline, OpenTimeline, is_open
from loadkit.workload.sizing import Sizing

log = logging.getLogger("loadkit")


def emit(event: str, **data: Any) -> None:
    """One machine-readable line for the runner (progress, stop reason, end of run).

    A runner that is gone (its pipe closed) must not stop the drain: the line is dropped.
    """
    try:
        sys.stdout.write(PROGRESS_PREFIX + json.dumps({"event": event, **data}) + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


class LoadkitApp:
    """Per-process state of one run; hooks into Locust's events."""

    def __init__(self, cfg: RunConfig):
        from loadkit.scenario import load_scenario

        self.cfg = cfg
        self.scenario = sc = with_seed(load_scenario(cfg.scenario_path), cfg.extra.get("seed"))
        # A worker started with `--region R` runs only R's traffic (users and arrivals).
        self.region = os.environ.get(WORKER_REGION_ENV) or None
        endpoints = dict(cfg.endpoints)
        if self.region is not None:
            if self.region not in endpoints:
                sys.stderr.write(
                    f"error: --region {self.region}: the scenario's regions are "
                    f"{', '.join(endpoints)}\n"
                )
                sys.exit(2)
            endpoints = {self.region: endpoints[self.region]}
        self.ctx = RunContext(
            scenario=sc,
            endpoints=endpoints,
            headers={},  # each route's own (its API's auth, its headers): with_routes
            run_id=cfg.run_id,
            seed=sc.seed,
            rtt_ms={r.name: r.rtt_ms for r in sc.regions},
            sizing=Sizing.from_dict(cfg.extra.get("sizing")),
            prompt_salt=str(cfg.extra.get("prompt_salt") or ""),
        ).with_routes()
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
        self._interrupted = False  # the stop signal came (Ctrl-C, SIGTERM, loadkit died)
        self._timeline_done = False
        self._stop_watch: Any = None  # gevent's handler of STOP_SIGNAL (kept alive)
        self.book = WorkerBook()  # master: its workers over the run
        # worker: the master's splits of the arrivals, in epoch order; each holds from its
        # `from_s` to the next one's (a driver that starts late serves the older ones too)
        self.assignments: list[dict[str, Any]] = []
        self._epoch = 0
        self._split_sent = False  # this test has a split: later ones start `lead` later
        self._driving = False
        self.schedules: list[Any] = []  # this process's open-loop schedulers
        self.tally = Tally()  # the fate of the planned arrivals (summed over workers)
        self.worker_sent: dict[str, dict[str, int]] = {}  # master: workers' sent, in flight
        self._last_sent = (0.0, 0)

    # -- Locust hooks ---------------------------------------------------------------------------

    def install(self) -> None:
        events.init_command_line_parser.add_listener(self.on_parser)
        events.init.add_listener(self.on_init)
        events.test_start.add_listener(self.on_test_start)
        events.test_stopping.add_listener(self.on_test_stopping)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)
        events.spawning_complete.add_listener(lambda **_: quiet_gc())

    def on_parser(self, parser: Any, **_: Any) -> None:
        parser.add_argument("--loadkit-t0", type=float, default=0.0, include_in_web_ui=False)
        parser.add_argument("--loadkit-t0-epoch", type=float, default=0.0, include_in_web_ui=False)

    def on_init(self, environment: Any, runner: Any, **_: Any) -> None:
        self.runner = runner
        self.ctx.environment = environment
        if isinstance(runner, WorkerRunner):
            self.role = "worker"
            self.shipper = RecordShipper(runner.send_message, worker="?", on_record=self._count)
            self.shipper.state = self._sent_state
            self.ctx.sink = self.shipper
            self.ctx.worker = f"w{max(int(runner.worker_index), 0)}"
            runner.register_message(ASSIGN, self._on_assign)
            runner.send_message(HELLO, {"region": self.region})
            return
        self.role = "master" if isinstance(runner, MasterRunner) else "local"
        self.writer = RecordWriter(
            self.cfg.folder.requests_csv, record_headers=self.scenario.target.record_headers
        )
        if self.role == "master":
            self.receiver = RecordReceiver(self.writer.write_line)
            runner.register_message(MESSAGE, self._on_batch)
            runner.register_message(HELLO, self._on_hello)
            events.heartbeat_sent.add_listener(self._on_heartbeat)
        else:
            self.ctx.sink = self._local_sink
        runner.greenlet.spawn(self._progress_loop)
        self._watch_stop_signal()

    # -- the stop signal ------------------------------------------------------------------------

    def _watch_stop_signal(self) -> None:
        """Local runner or master: drain on loadkit's STOP_SIGNAL, whatever Locust's handlers.

        Installed here, at `init`, before a headless run starts: Locust's own SIGTERM
        handler comes only after the shape greenlet ends, so until then SIGTERM would end
        the process with its requests in flight. Workers get no handler: the master stops
        them with Locust's stop message and waits for their last records, as at the end of
        the timeline. `ready` tells the runner the signal is safe to send.
        """
        import gevent

        self._stop_watch = gevent.signal_handler(STOP_SIGNAL, self._on_stop_signal)
        emit("ready")
        if self._parent_gone():  # died before the kernel's death signal was armed or handled
            self._on_stop_signal()

    def _parent_gone(self) -> bool:
        parent = os.environ.get(PARENT_PID_ENV)
        return bool(parent) and os.getppid() != int(parent or 0)

    def _on_stop_signal(self) -> None:
        """Stop the run the way the end of the timeline does (runs in its own greenlet)."""
        if self._parent_gone():
            self._orphaned()
        if self.writer is not None:
            self.writer.flush()  # what finished before the signal is on disk, whatever follows
        if self._interrupted:
            return
        self._interrupted = True
        if self.runner is None or not self.ctx.run_t0:
            # Not started (a master still waiting for its workers): nothing is in flight.
            self.stop_reason = "interrupted"
            self.end()
            if self.runner is not None:
                self.runner.quit()
            raise SystemExit(0)  # gevent hands it to the main greenlet
        if self._timeline_done:  # --web after the timeline: the users are stopped already
            self._stop_web_ui()
            return
        self.request_stop("interrupted", message=None)

    def _orphaned(self) -> None:
        """`loadkit run` died: Locust's output goes to locust.log instead of a closed pipe."""
        fd = os.open(self.cfg.folder.locust_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        for target in (1, 2):
            os.dup2(fd, target)
        os.close(fd)
        log.warning(
            "loadkit run is gone: stopping the users (in-flight requests get %g s), writing "
            "requests.csv; summary.json is not written (run `loadkit report %s`)",
            self.cfg.drain_s,
            self.cfg.run_dir,
        )

    def _stop_web_ui(self) -> None:
        web_ui = getattr(self.ctx.environment, "web_ui", None)
        if web_ui is not None:
            web_ui.stop()  # Locust's main greenlet then shuts down (quitting: `end`)
        elif self.runner is not None:
            self.runner.quit()

    def on_test_start(self, environment: Any, **_: Any) -> None:
        opts = environment.parsed_options
        if self.runner is None and getattr(opts, "worker", False):
            # A worker that joins a running test can get its first spawn message before
            # Locust fires `init` (the runner handles messages from its constructor on):
            # let `init` run first, so the worker's role, shipper and name are in place.
            import gevent

            deadline = time.perf_counter() + 10.0
            while self.runner is None and time.perf_counter() < deadline:
                gevent.sleep(0.01)
        self.stop_reason = ""
        self.ctx.stopping = False
        if self.role == "worker":
            self.ctx.run_t0 = _worker_t0(opts)
            index = max(int(getattr(self.runner, "worker_index", 0)), 0)
            self.ctx.worker = f"w{index}"
            # Each worker guards its share of the budget; the master adds up the spend.
            n = max(self.cfg.processes, 1)
            self.ctx.guard = BudgetGuard(self.total_guard.limits.share(index % n, n))
            assert self.shipper is not None
            self.shipper.worker = self.ctx.worker
            self.shipper.start()
            return
        # Open loop: the schedule starts a moment later, once every process has its driver
        # running (workers get the spawn message and build their client first).
        lead = (0.5 if self.role == "master" else 0.1) if self.open else 0.0
        self.ctx.run_t0 = time.perf_counter() + lead
        if opts is not None:
            # Both reach the workers with the spawn message: the monotonic clock serves the
            # processes of this machine, the wall clock (NTP-synced) workers elsewhere.
            opts.loadkit_t0 = self.ctx.run_t0
            opts.loadkit_t0_epoch = time.time() + (self.ctx.run_t0 - time.perf_counter())
        self.ctx.guard = self.total_guard
        if self.receiver is not None:
            self.receiver.reset_finals()
        if self.role == "master":
            self._split_sent = False
            self._reassign(0.0)
        # the run clock, for the chaos drill's timeline and for placing outside journals on it
        t0_epoch = time.time() + (self.ctx.run_t0 - time.perf_counter())
        emit("started", t0=self.ctx.run_t0, t0_epoch=t0_epoch)

    def on_test_stopping(self, environment: Any, **_: Any) -> None:
        self.ctx.stopping = True
        for driver in list(self.drivers):
            driver.stop()

    def on_test_stop(self, environment: Any, **_: Any) -> None:
        if self.role == "worker":
            if self.shipper is not None:
                self.shipper.final_extra = {"schedule": self.tally.to_json()} if self.open else {}
                self.shipper.finish()
            return
        if self.receiver is not None:
            self._wait_last_batches(timeout_s=self.cfg.drain_s + 5)
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
        if self.role == "master":
            # A worker that stopped is off Locust's list until it reports ready again (after
            # the stop timeout), so Locust's own quit would miss it: tell every one to go.
            for e in self.book.entries.values():
                runner.send_message("quit", None, client_id=e.client_id)

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
            if self._interrupted:  # Ctrl-C during the timeline: done, no UI to look at
                self._stop_web_ui()
                return
            self._timeline_done = True
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
        entry = self.book.by_name(str(msg.data["worker"]))
        if entry is not None:
            entry.rows = self.receiver.rows_by_worker.get(entry.name, entry.rows)
            entry.finished = entry.name in self.receiver.finished
            self.book.seen(entry.client_id, self.elapsed_s())
        self.total_guard.add_cost(float(msg.data.get("cost", 0.0)))
        # The total across workers: a backstop when workers beyond --expect-workers share a slot.
        self.total_guard.requests += int(msg.data.get("requests", 0))
        if "sent" in msg.data:
            self.worker_sent[str(msg.data["worker"])] = msg.data["sent"]
        if msg.data.get("schedule") is not None:
            self.tally.add(msg.data["schedule"])
        if msg.data.get("exhausted"):
            self.exhausted_workers.add(str(msg.data["worker"]))
        if self.total_guard.exhausted:
            self.request_stop(self.total_guard.reason)
        elif len(self.exhausted_workers) >= max(len(self.book.live()), 1):
            self.request_stop(str(msg.data.get("reason") or "budget reached on every worker"))

    def request_stop(self, reason: str, message: str | None = "") -> None:
        """End the run at the shape's next tick (at most a second later); `message` is what
        the runner prints (default `stopping: <reason>`; None: nothing)."""
        if self.stop_reason:
            return
        self.stop_reason = reason
        self.ctx.stopping = True
        emit("stop", reason=reason, message=f"stopping: {reason}" if message == "" else message)

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
        from loadkit.traffic.opendriver import drive

        drive(self)

    def _wait_assignment(self, used: int) -> dict[str, Any] | None:
        """The newest assignment after epoch `used` (a worker waits for the master's)."""
        import gevent

        if self.role != "worker":
            if used >= 0:
                return None
            return {"epoch": 0, "from_s": 0.0, "serves": {r: (0, 1) for r in self.ctx.endpoints}}
        while not self.ctx.stopping:
            later = self._later_assignment(used)
            if later is not None:
                return later
            if self.assignments and used >= 0:
                return None
            gevent.sleep(0.05)
        return None

    def _later_assignment(self, used: int) -> dict[str, Any] | None:
        """The first assignment after epoch `used`: none is skipped, or its arrivals are lost."""
        return next((a for a in self.assignments if a["epoch"] > used), None)

    # -- workers (distributed runs) -------------------------------------------------------------

    def _on_assign(self, environment: Any = None, msg: Any = None, **_: Any) -> None:
        """Worker: the master's new split of the arrivals, effective at `from_s`."""
        data = msg.data
        if self.assignments and data["epoch"] <= self.assignments[-1]["epoch"]:
            return
        self.assignments.append(data)
        for sched in list(self.drivers):
            sched.cut(float(data["from_s"]))

    def _on_hello(self, environment: Any = None, msg: Any = None, **_: Any) -> None:
        client_id = msg.node_id
        name = f"w{self.runner.get_worker_index(client_id)}"
        region = msg.data.get("region") or None
        running = bool(self.ctx.run_t0) and not self.ctx.stopping
        self.book.join(client_id, name, region, self.elapsed_s())
        where = f" for region {region}" if region else ""
        if running:
            emit(
                "worker_joined",
                worker=name,
                region=region,
                t_s=round(self.elapsed_s(), 3),
                message=f"worker {name}{where} joined at {self.elapsed_s():.1f} s",
            )
            self._reassign(SWITCH_LEAD_S)
        else:
            emit(
                "worker_connected",
                worker=name,
                region=region,
                message=f"worker {name}{where} connected",
            )

    def _on_heartbeat(self, client_id: str, timestamp: float, **_: Any) -> None:
        self.book.seen(client_id, self.elapsed_s())

    def _reassign(self, lead_s: float) -> None:
        """Master: split the open-loop arrivals among the live workers from `lead_s` on."""
        live = self.book.regions()
        if not self.open or self.role != "master":
            return
        self.timeline.processes = max(len(live), 1)  # one driver user per live worker
        split, unserved = split_regions(live, list(self.timeline.plan.region_names))
        if unserved and live:
            emit(
                "unserved",
                regions=unserved,
                message=f"no worker serves region {', '.join(unserved)}: "
                "its arrivals are not sent (start a worker with --region, or one without)",
            )
        if not live:
            return
        self._epoch += 1
        # The first split covers the whole schedule; a re-split takes over from `lead_s` on.
        from_s = self.elapsed_s() + lead_s if self._split_sent else 0.0
        self._split_sent = True
        for e in self.book.live():
            serves = {r: list(v) for r, v in split.get(e.name, {}).items()}
            self.runner.send_message(
                ASSIGN,
                {"epoch": self._epoch, "from_s": from_s, "serves": serves},
                client_id=e.client_id,
            )

    def _check_workers(self) -> None:
        """Master: note workers that stopped answering (Locust's heartbeats) or left early."""
        if self.role != "master" or not self.ctx.run_t0:
            return
        clients = self.runner.clients
        stopping = self.ctx.stopping or self.runner.state in (STATE_STOPPING, STATE_STOPPED)
        changed = False
        for e in self.book.entries.values():
            node = clients.get(e.client_id)
            if e.missing_s is not None and node is not None and node.state != STATE_MISSING:
                # Locust's "self-healed": heartbeats again; it gets a share again
                e.silent.append((round(e.missing_s, 3), round(self.elapsed_s(), 3)))
                e.missing_s = None
                emit(
                    "worker_back",
                    worker=e.name,
                    message=f"worker {e.name} is back (silent from {e.silent[-1][0]:.1f} s "
                    f"to {e.silent[-1][1]:.1f} s)",
                )
                changed = True
        for e in self.book.live():
            node = clients.get(e.client_id)
            if node is not None and node.state != STATE_MISSING:
                continue
            if node is None and e.finished:
                if stopping:  # the normal end: Locust forgets a worker once it stopped
                    continue
                e.left_s = self.elapsed_s()
                emit(
                    "worker_left",
                    worker=e.name,
                    t_s=round(e.left_s, 3),
                    message=f"worker {e.name} left at {e.left_s:.1f} s",
                )
            else:
                e.missing_s = e.last_seen_s
                emit(
                    "worker_missing",
                    worker=e.name,
                    t_s=round(e.missing_s, 3),
                    message=f"worker {e.name} went missing (last heard from at "
                    f"{e.missing_s:.1f} s); its records up to then are kept",
                )
            changed = True
        if changed and not stopping:
            self._reassign(SWITCH_LEAD_S)

    def _wait_last_batches(self, timeout_s: float) -> None:
        """Master: wait for every live worker's last batch (not for missing ones)."""
        import gevent

        assert self.receiver is not None
        deadline = time.perf_counter() + timeout_s
        while True:
            self._check_workers()
            pending = [e.name for e in self.book.live() if e.name not in self.receiver.finished]
            if not pending:
                return
            if time.perf_counter() > deadline:
                log.warning("records: no last batch in time from %s", ", ".join(pending))
                return
            gevent.sleep(0.05)

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
        if self.open:
            from loadkit.traffic.arrivals import write_schedule

            write_schedule(
                self.cfg.folder.schedule_json,
                self.timeline.plan,
                self.scenario,
                self.cfg.time_scale,
                self.timeline.duration_s,
                self.tally,
                self.cfg.processes,
                self.stop_reason or "completed",
            )
        emit(
            "ended",
            reason=self.stop_reason or "completed",
            elapsed_s=round(self.elapsed_s(), 3),
            run_id=self.cfg.run_id,
            **(self.writer.status() if self.writer is not None else {"rows": 0}),
            duplicates=self.receiver.duplicates if self.receiver is not None else 0,
            workers=self.book.summary() if self.role == "master" else None,
        )

    def _progress_loop(self) -> None:
        import gevent

        total = round(self.timeline.duration_s, 1)
        while not self._ended:
            gevent.sleep(1.0)
            if self.runner.state not in (STATE_STOPPED, STATE_CLEANUP):
                self._check_workers()
            if not self.ctx.run_t0 or not self.cfg.progress:
                continue
            stats = self.runner.stats.total
            line: dict[str, Any] = {"users": self.runner.user_count}
            if self.open:
                line = self._open_progress()
            emit(
                "progress",
                elapsed_s=round(self.elapsed_s(), 1),
                total_s=total,
                rps=round(stats.current_rps, 2),
                requests=self.rows,
                errors=self.errors,
                **line,
            )

    def _sent_state(self) -> dict[str, Any]:
        from loadkit.traffic.opendriver import sent_state

        return {"sent": sent_state(self.schedules)} if self.open else {}

    def _open_progress(self) -> dict[str, Any]:
        """Open loop: planned and sent arrivals per second over the last second, in flight."""
        from loadkit.traffic.opendriver import planned_in, sent_state

        now = self.elapsed_s()
        states = [sent_state(self.schedules), *self.worker_sent.values()]
        sent = sum(s["sent"] for s in states)
        t_prev, sent_prev = self._last_sent
        self._last_sent = (now, sent)
        dt = max(now - t_prev, 1e-3)
        return {
            "planned_per_s": round(planned_in(self.timeline.plan.t_s, now - dt, now) / dt, 2),
            "sent_per_s": round((sent - sent_prev) / dt, 2),
            "in_flight": sum(s["in_flight"] for s in states),
        }


def _worker_t0(opts: Any) -> float:
    """The master's run start on this worker's monotonic clock.

    On the master's machine `perf_counter` (CLOCK_MONOTONIC) is the same clock and exact;
    elsewhere the master's wall-clock start is translated (clocks synced by NTP).
    """
    now = time.perf_counter()
    t0 = float(getattr(opts, "loadkit_t0", 0.0) or 0.0)
    epoch = float(getattr(opts, "loadkit_t0_epoch", 0.0) or 0.0)
    if epoch:
        from_wall = now - (time.time() - epoch)
        return t0 if t0 and abs(t0 - from_wall) < 0.5 else from_wall
    return t0 if now - 60.0 < t0 < now + 5.0 else now


def _load() -> LoadkitApp:
    path = os.environ.get(RUN_CONFIG_ENV)
    if not path:
        sys.stderr.write("error: this locustfile is run by `loadkit run SCENARIO`\n")
        sys.exit(2)
    app = LoadkitApp(RunConfig.read(path))
    app.install()
    return app


APP = _load()
globals().update({cls.__name__: cls for cls in APP.user_classes})
LoadkitShape = APP.shape
