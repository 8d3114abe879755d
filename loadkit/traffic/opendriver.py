"""The open-loop driver of one load-generator process: its share of the schedule, fired by
`OpenLoopScheduler`s (a new one whenever the master re-splits the arrivals among workers),
then every arrival accounted for (`loadkit.traffic.arrivals`) before in-flight requests
drain. Called by the locustfile's one driver user per process; free of Locust imports."""

from __future__ import annotations

from typing import Any

from loadkit.traffic.arrivals import account


def drive(app: Any) -> None:
    """This process's share of the schedule, re-cut whenever the master reassigns it."""
    from loadkit.traffic.distributed import select_arrivals
    from loadkit.traffic.openloop import OpenLoopScheduler
    from loadkit.traffic.opensessions import SessionRunner

    if app._driving:  # one schedule per process, however many driver users it gets
        return
    app._driving = True
    ctx = app.ctx
    plan = app.timeline.plan
    sessions = SessionRunner(plan, ctx)
    done: list[Any] = app.schedules
    counted: set[int] = set()

    def settle() -> None:
        """Each stopped schedule's unsent arrivals, once: records, then the tally."""
        for sched in done:
            if id(sched) not in counted:
                counted.add(id(sched))
                account(sched, plan, ctx, app.stop_reason or "stopped", app.tally)

    try:
        used = -1
        while not ctx.stopping:
            a = app._wait_assignment(used)
            if a is None:
                break
            used = a["epoch"]
            serves = {r: (int(v[0]), int(v[1])) for r, v in a["serves"].items()}
            times, idx = select_arrivals(
                plan.t_s, plan.region, plan.region_names, serves, float(a["from_s"])
            )
            sched = OpenLoopScheduler(
                times,
                sessions.run,
                run_t0=ctx.run_t0,
                max_in_flight=app.timeline.max_in_flight,
                indices=idx,
                admit=ctx.admit,
            )
            app.drivers.append(sched)
            done.append(sched)
            later = app._later_assignment(used)
            if later is not None:  # reassigned before this schedule started
                sched.cut(float(later["from_s"]))
            try:
                sched.run()
            finally:
                app.drivers.remove(sched)
            if not sched.handed_over and (  # schedule done, budget spent or stop asked
                ctx.stopping or app._later_assignment(used) is None
            ):
                break
        if ctx.guard.reason and app.role != "worker":
            app.request_stop(ctx.guard.reason)
        if ctx.guard.reason and not app.stop_reason:
            app.stop_reason = ctx.guard.reason
        settle()
        for sched in done:
            sched.drain(app.cfg.drain_s)
    finally:
        settle()
        for sched in done:
            sched.drain(0)
        app._driving = False


def sent_state(schedules: list[Any]) -> dict[str, int]:
    """Arrivals this process sent so far, and its requests in flight (for the progress line)."""
    return {
        "sent": sum(s.fired for s in schedules),
        "in_flight": sum(s.in_flight for s in schedules),
    }


def planned_in(plan_t_s: Any, t0_s: float, t1_s: float) -> int:
    """Planned arrivals intended in [t0_s, t1_s) on the run clock."""
    import numpy as np

    lo, hi = np.searchsorted(plan_t_s, [t0_s, t1_s], side="left")
    return int(hi - lo)
