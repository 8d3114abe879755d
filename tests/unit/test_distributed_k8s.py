"""The Kubernetes recipe (deploy/kubernetes/) parses and hangs together.

The master's Service reaches the master pod on the port it binds; workers dial that Service
and port; workers and master mount the same scenario ConfigMap at the same path; the
scenario in it is valid; the API key variable it names comes from a Secret in every pod;
the worker replicas match --expect-workers; the CLI accepts both command lines.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadkit.cli import build_parser
from loadkit.scenario import load_scenario

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def _docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"one {kind} {name}, got {len(found)}"
    return found[0]


def _container(dep: dict[str, Any]) -> dict[str, Any]:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


def _loadkit_argv(c: dict[str, Any]) -> list[str]:
    """The `loadkit ...` arguments of a container (direct args or inside `sh -c`)."""
    if c.get("command") == ["sh", "-c"]:
        words = shlex.split(" ".join(c["args"]))
        start = words.index("loadkit") + 1
        end = next((i for i in range(start, len(words)) if words[i].endswith(";")), len(words))
        return [*words[start:end], words[end].rstrip(";")] if end < len(words) else words[start:]
    return list(c["args"])


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return _docs()


def test_manifests_are_the_documented_set(docs) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == [
        ("ConfigMap", "loadkit-scenario"),
        ("Deployment", "loadkit-master"),
        ("Deployment", "loadkit-worker"),
        ("Service", "loadkit-master"),
    ]
    for d in docs:
        assert d["apiVersion"] == ("apps/v1" if d["kind"] == "Deployment" else "v1")
    for name in ("loadkit-master", "loadkit-worker"):
        dep = _one(docs, "Deployment", name)
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_master_service_workers_and_ports_agree(docs) -> None:
    master = _one(docs, "Deployment", "loadkit-master")
    worker = _one(docs, "Deployment", "loadkit-worker")
    svc = _one(docs, "Service", "loadkit-master")
    assert master["spec"]["replicas"] == 1
    m_argv, w_argv = _loadkit_argv(_container(master)), _loadkit_argv(_container(worker))
    # the CLI takes both command lines as written
    m_args = build_parser().parse_args(m_argv)
    w_args = build_parser().parse_args(w_argv)
    assert m_args.command == "run" and m_args.master
    assert w_args.command == "worker"
    port = m_args.master_bind_port
    # the Service selects the master pod and forwards the port it binds
    pod_labels = master["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    (sp,) = svc["spec"]["ports"]
    assert sp["port"] == w_args.master_port and sp["targetPort"] == port
    assert port in [p["containerPort"] for p in _container(master)["ports"]]
    worker_labels = worker["spec"]["template"]["metadata"]["labels"]
    assert not svc["spec"]["selector"].items() <= worker_labels.items()
    # workers dial the Service by name; as many as the master waits for
    assert w_args.master_host == svc["metadata"]["name"]
    assert worker["spec"]["replicas"] == m_args.expect_workers


def test_scenario_configmap_is_mounted_alike_and_valid(docs, tmp_path) -> None:
    cm = _one(docs, "ConfigMap", "loadkit-scenario")
    mounts = {}
    for name in ("loadkit-master", "loadkit-worker"):
        dep = _one(docs, "Deployment", name)
        vols = {
            v["name"]: v["configMap"]["name"]
            for v in dep["spec"]["template"]["spec"]["volumes"]
            if "configMap" in v
        }
        (vol,) = [v for v, cm_name in vols.items() if cm_name == cm["metadata"]["name"]]
        (mount,) = [m for m in _container(dep)["volumeMounts"] if m["name"] == vol]
        mounts[name] = mount["mountPath"]
    assert mounts["loadkit-master"] == mounts["loadkit-worker"]  # workers read the same file
    m_args = build_parser().parse_args(
        _loadkit_argv(_container(_one(docs, "Deployment", "loadkit-master")))
    )
    scenario_path = Path(m_args.scenario)
    assert str(scenario_path.parent) == mounts["loadkit-master"]
    assert scenario_path.name in cm["data"]
    local = tmp_path / scenario_path.name
    local.write_text(cm["data"][scenario_path.name])
    sc = load_scenario(local)
    # a remote target: the run needs a budget (or --yes) and an API key in every pod
    assert sc.budget.max_usd is not None or sc.budget.max_requests is not None
    key = sc.target.api_key_env
    assert key
    for name in ("loadkit-master", "loadkit-worker"):
        env = {e["name"]: e for e in _container(_one(docs, "Deployment", name)).get("env", [])}
        assert "secretKeyRef" in env[key]["valueFrom"], name


def test_workers_have_one_core_each(docs) -> None:
    res = _container(_one(docs, "Deployment", "loadkit-worker"))["resources"]
    assert str(res["requests"]["cpu"]) == "1" and str(res["limits"]["cpu"]) == "1"
