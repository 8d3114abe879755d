"""`loadkit run --master` with `loadkit worker`s, all as subprocesses on loopback.

Master plus two workers: one requests.csv with every attempt exactly once and a summary that
matches; per-region workers send only their region; a worker killed mid-run leaves a
complete, flagged result; a worker that joins late gets its share.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from loadkit.results.reader import read_records
from loadkit.scenario import load_scenario
from loadkit.traffic.timeline import open_plan
from tests.ports import free_port
from tests.run_helpers import loadkit_cmd, scenario, summary

pytestmark = pytest.mark.timeout(150)


class Proc:
    """A `loadkit` subprocess whose output is collected line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None):
        self.lines: list[str] = []
        self.p = subprocess.Popen(
            loadkit_cmd(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in x for x in self.lines):
            if time.monotonic() > deadline or self.p.poll() is not None:
                time.sleep(0.2)
                raise AssertionError(f"no {text!r} in:\n{self.output}")
            time.sleep(0.05)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait(self, timeout_s: float = 90) -> int:
        rc = self.p.wait(timeout=timeout_s)
        self._t.join(timeout=5)
        return rc

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


@contextlib.contextmanager
def master(path: Path, out: Path, workers: int, *extra: str) -> Iterator[tuple[Proc, int]]:
    port = free_port()
    m = Proc(
        "run",
        str(path),
        "--out",
        str(out),
        "--master",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        str(port),
        "--expect-workers",
        str(workers),
        *extra,
    )
    try:
        yield m, port
    finally:
        m.stop()


def worker(port: int, *extra: str) -> Proc:
    return Proc("worker", "--master-host", "127.0.0.1", "--master-port", str(port), *extra)


@contextlib.contextmanager
def stopping(*procs: Proc) -> Iterator[None]:
    try:
        yield
    finally:
        for p in procs:
            p.stop()


def _open(rate: str, seconds: int) -> dict:
    return {"type": "open", "process": "constant", "phases": [{"rate": rate, "for": f"{seconds}s"}]}


def test_master_and_two_workers_every_attempt_once(tmp_path) -> None:
    path = scenario(tmp_path, "dist", load=_open("40/s", 4))
    planned = len(open_plan(load_scenario(path), 1.0))
    out = tmp_path / "run"
    with master(path, out, 2) as (m, port):
        m.wait_for("waiting for 2 workers")
        w1, w2 = worker(port), worker(port)
        with stopping(w1, w2):
            assert m.wait() == 0, m.output
            assert w1.wait(30) == 0 and w2.wait(30) == 0  # the master sends them home
    assert sorted(p.name for p in out.glob("requests*.csv")) == ["requests.csv"]
    rec = read_records(out / "requests.csv")
    assert not rec.truncated
    ids = rec["request_id"].tolist()
    assert len(ids) == len(set(ids)) == planned == 160
    assert set(rec["outcome"].tolist()) == {"ok"}
    by_worker = {w: int(np.sum(rec["worker"] == w)) for w in set(rec["worker"].tolist())}
    assert sorted(by_worker) == ["w0", "w1"] and all(n >= 60 for n in by_worker.values())
    s = summary(out)
    assert s["attempts"] == planned and s["requests"] == planned
    assert s["stop_reason"] == "completed"
    workers = {w["worker"]: w for w in s["workers"]}
    assert {w: e["records"] for w, e in workers.items()} == by_worker
    assert all(e["status"] == "ok" and e["last_batch"] for e in workers.values())
    assert "went missing" not in m.output


def test_region_workers_send_only_their_region(tmp_path) -> None:
    regions = [{"name": "eu", "share": "40%"}, {"name": "us", "share": "60%"}]
    path = scenario(tmp_path, "regions", regions=regions, load=_open("30/s", 4))
    plan = open_plan(load_scenario(path), 1.0)
    want = {n: int(np.sum(plan.region == i)) for i, n in enumerate(plan.region_names)}
    out = tmp_path / "run"
    with master(path, out, 2) as (m, port):
        m.wait_for("waiting for 2 workers")
        eu, us = worker(port, "--region", "eu"), worker(port, "--region", "us")
        with stopping(eu, us):
            assert m.wait() == 0, m.output
    rec = read_records(out / "requests.csv")
    ids = rec["request_id"].tolist()
    assert len(ids) == len(set(ids)) == len(plan)
    s = summary(out)
    region_of = {w["worker"]: w["region"] for w in s["workers"]}
    assert sorted(region_of.values()) == ["eu", "us"]
    for w, region in region_of.items():
        sent = set(rec["region"][rec["worker"] == w].tolist())
        assert sent == {region}, (w, sent)
    got = {n: int(np.sum(rec["region"] == n)) for n in want}
    assert got == want and min(got.values()) > 0


def test_worker_killed_mid_run_leaves_a_flagged_complete_result(tmp_path) -> None:
    path = scenario(tmp_path, "kill", load=_open("20/s", 14))
    plan = open_plan(load_scenario(path), 1.0)
    out = tmp_path / "run"
    with master(path, out, 2) as (m, port):
        m.wait_for("waiting for 2 workers")
        w1, w2 = worker(port), worker(port)
        with stopping(w1, w2):
            m.wait_for("requests", timeout_s=60)  # the first progress line: the run is on
            time.sleep(3.0)
            w2.p.kill()  # SIGKILL: no last batch, no goodbye
            assert m.wait() == 0, m.output
    rec = read_records(out / "requests.csv")
    assert not rec.truncated
    ids = rec["request_id"].tolist()
    assert len(ids) == len(set(ids))  # nothing counted twice
    s = summary(out)
    assert s["stop_reason"] == "completed" and s["attempts"] == len(ids)
    gone = [w for w in s["workers"] if w["status"] == "missing"]
    assert len(gone) == 1, s["workers"]
    dead = gone[0]
    assert 1.0 < dead["missing_since_s"] < 12.0
    assert dead["records"] == int(np.sum(rec["worker"] == dead["worker"])) > 0  # what it sent stays
    assert f"worker {dead['worker']} went missing" in m.output
    # Locust notices in about 3 s; from a second after that the survivor fires every arrival.
    t_ms = rec["t_intended"]
    after = dead["missing_since_s"] + 6.0
    planned_after = int(np.sum(plan.t_s >= after))
    assert planned_after > 0
    assert int(np.sum(t_ms >= after * 1000.0)) == planned_after


def test_worker_joining_late_gets_its_share(tmp_path) -> None:
    path = scenario(tmp_path, "late", load=_open("20/s", 12))
    planned = len(open_plan(load_scenario(path), 1.0))
    out = tmp_path / "run"
    with master(path, out, 1) as (m, port):
        m.wait_for("waiting for 1 worker")
        w1 = worker(port)
        with stopping(w1):
            m.wait_for("requests", timeout_s=60)
            time.sleep(2.0)
            w2 = worker(port)
            with stopping(w2):
                m.wait_for("joined at", timeout_s=30)
                assert m.wait() == 0, m.output
    rec = read_records(out / "requests.csv")
    ids = rec["request_id"].tolist()
    assert len(ids) == len(set(ids)) == planned  # handed over without a gap or a double
    s = summary(out)
    late = [w for w in s["workers"] if w["joined_s"] > 0]
    assert len(late) == 1 and late[0]["status"] == "ok"
    name = late[0]["worker"]
    mine = rec["t_intended"][rec["worker"] == name]
    assert mine.size >= 20  # about half of the arrivals after it joined
    assert float(mine.min()) >= late[0]["joined_s"] * 1000.0


def test_closed_loop_late_worker_takes_half_the_users(tmp_path) -> None:
    load = {"type": "closed", "phases": [{"kind": "hold", "users": 4, "for": "12s"}]}
    path = scenario(tmp_path, "late_closed", load=load)
    out = tmp_path / "run"
    with master(path, out, 1) as (m, port):
        m.wait_for("waiting for 1 worker")
        w1 = worker(port)
        with stopping(w1):
            m.wait_for("requests", timeout_s=60)
            time.sleep(2.0)
            w2 = worker(port)
            with stopping(w2):
                m.wait_for("joined at", timeout_s=30)
                assert m.wait() == 0, m.output
    rec = read_records(out / "requests.csv")
    ids = rec["request_id"].tolist()
    assert len(ids) == len(set(ids))
    s = summary(out)
    (late,) = [w for w in s["workers"] if w["joined_s"] > 0]
    # Locust moves half of the users to the late worker: from then on each runs two
    after = rec["t_sent"] >= (late["joined_s"] + 3.0) * 1000.0
    users: dict[str, set[str]] = {}
    for w, sid in zip(rec["worker"][after], rec["session_id"][after], strict=True):
        users.setdefault(str(w), set()).add(str(sid).split("-")[2])  # worker-workload-user-n
    assert {w: len(u) for w, u in users.items()} == {"w0": 2, late["worker"]: 2}, users
    assert late["records"] == int(np.sum(rec["worker"] == late["worker"]))


def test_request_budget_counts_across_workers(tmp_path) -> None:
    path = scenario(tmp_path, "budget", load=_open("40/s", 4), budget={"max_requests": 50})
    out = tmp_path / "run"
    with master(path, out, 2) as (m, port):
        m.wait_for("waiting for 2 workers")
        w1, w2 = worker(port), worker(port)
        with stopping(w1, w2):
            assert m.wait() == 0, m.output
    rec = read_records(out / "requests.csv")
    ids = rec["request_id"].tolist()
    assert len(ids) == len(set(ids)) == 50  # the whole run's budget, not each worker's
    assert sorted(set(rec["worker"].tolist())) == ["w0", "w1"]
    s = summary(out)
    assert s["stop_reason"].startswith("request budget reached"), s["stop_reason"]


def test_closed_loop_region_workers_send_only_their_region(tmp_path) -> None:
    regions = [{"name": "eu", "share": "50%"}, {"name": "us", "share": "50%"}]
    load = {"type": "closed", "phases": [{"kind": "hold", "users": 4, "for": "4s"}]}
    path = scenario(tmp_path, "closed_regions", regions=regions, load=load)
    out = tmp_path / "run"
    with master(path, out, 2) as (m, port):
        m.wait_for("waiting for 2 workers")
        eu, us = worker(port, "--region", "eu"), worker(port, "--region", "us")
        with stopping(eu, us):
            assert m.wait() == 0, m.output
    rec = read_records(out / "requests.csv")
    region_of = {w["worker"]: w["region"] for w in summary(out)["workers"]}
    assert sorted(region_of.values()) == ["eu", "us"]
    for w, region in region_of.items():
        sent = rec["region"][rec["worker"] == w]
        assert sent.size > 0 and set(sent.tolist()) == {region}


def test_a_silent_worker_that_comes_back_is_listed_and_counted_once(tmp_path) -> None:
    path = scenario(tmp_path, "pause", load=_open("20/s", 16))
    out = tmp_path / "run"
    with master(path, out, 2) as (m, port):
        m.wait_for("waiting for 2 workers")
        w1, w2 = worker(port), worker(port)
        with stopping(w1, w2):
            m.wait_for("requests", timeout_s=60)
            time.sleep(2.0)
            w2.p.send_signal(signal.SIGSTOP)  # no heartbeats, no records
            try:
                m.wait_for("went missing", timeout_s=20)
            finally:
                w2.p.send_signal(signal.SIGCONT)
            m.wait_for("is back", timeout_s=20)
            assert m.wait() == 0, m.output
    rec = read_records(out / "requests.csv")
    ids = rec["request_id"].tolist()
    assert len(ids) == len(set(ids))
    s = summary(out)
    assert [w["status"] for w in s["workers"]] == ["ok", "ok"]
    (back,) = [w for w in s["workers"] if w["silent"]]
    (a, b) = back["silent"][0]
    assert 0 < a < b
    assert back["records"] == int(np.sum(rec["worker"] == back["worker"]))
    assert f"worker {back['worker']} was silent from" in m.output
