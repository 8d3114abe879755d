"""`workloads:`: the personas (kind, token distributions, sessions, RAG steps, model)."""

from __future__ import annotations

from pathlib import Path

from loadkit.scenario import units
from loadkit.scenario.build.distributions import distribution
from loadkit.scenario.build.target import _mock_models
from loadkit.scenario.fields import Field, hint
from loadkit.scenario.model import RagStep, Target, Workload
from loadkit.scenario.request_fields import extra_body
from loadkit.workload.distributions import Constant, Distribution

_WORKLOAD_KEYS = (
    "name",
    "weight",
    "kind",
    "prompt_tokens",
    "output_tokens",
    "system_prefix_tokens",
    "stream",
    "turns",
    "think_time",
    "history",
    "max_tokens",
    "model",
    "rag",
    "extra_body",
)


def _workloads(field: Field, target: Target, base_dir: Path) -> tuple[Workload, ...]:
    items = field.items(min_len=1)
    out: list[Workload] = []
    seen: set[str] = set()
    for item in items:
        m = item.mapping(_WORKLOAD_KEYS, required=("name",))
        name_f = m.req("name")
        name = name_f.name()
        if name in seen:
            name_f.fail(f"workload {name!r} is declared twice")
        seen.add(name)
        kind = m.opt(
            "kind", lambda f: f.choice(("chat", "completions", "embeddings", "rag")), "chat"
        )
        _check_api_serves(m.get("kind") or item, kind, target.api)
        prompt = m.opt("prompt_tokens", lambda f: _tokens(f, base_dir), None)
        if prompt is None:
            item.fail("missing required key 'prompt_tokens'")
        if kind == "embeddings":
            output: Distribution = m.opt(
                "output_tokens", lambda f: _tokens(f, base_dir), Constant(0)
            )
        else:
            output = m.opt("output_tokens", lambda f: _tokens(f, base_dir), None)
            if output is None:
                item.fail("missing required key 'output_tokens'")
        stream = m.opt("stream", Field.boolean, kind != "embeddings")
        if kind == "embeddings" and stream:
            m.req("stream").fail("embeddings do not stream; remove `stream` or set it to false")
        turns = m.opt("turns", lambda f: _turns(f, base_dir), None)
        if kind == "embeddings" and turns is not None:
            m.req("turns").fail("embeddings are single requests; sessions apply to chat and rag")
        rag = m.opt("rag", lambda f: _rag(f, base_dir), None)
        if kind == "rag" and rag is None:
            item.fail("missing required key 'rag' (embed_tokens, retrieval_delay, context_tokens)")
        if kind != "rag" and rag is not None:
            m.req("rag").fail(f"only for kind: rag (this workload is {kind})")
        workload = Workload(
            name=name,
            weight=m.opt("weight", lambda f: f.number(low=0, low_open=True), 1.0),
            kind=kind,  # type: ignore[arg-type]
            prompt_tokens=prompt,
            output_tokens=output,
            system_prefix_tokens=m.opt(
                "system_prefix_tokens", lambda f: f.integer(low=0, high=10_000_000), 0
            ),
            stream=stream,
            turns=turns,
            think_time_s=m.opt("think_time", lambda f: distribution(f, "seconds", base_dir), None),
            history=m.opt("history", Field.boolean, kind in ("chat", "rag")),
            max_tokens=m.opt("max_tokens", lambda f: f.integer(low=1, high=10_000_000), None),
            model=m.opt("model", lambda f: _workload_model(f, target), None),
            rag=rag,
            extra_body=m.opt("extra_body", extra_body, {}),
        )
        _check_sessions(item, workload)
        out.append(workload)
    return tuple(out)


def _workload_model(field: Field, target: Target) -> str:
    model = field.string().strip()
    if target.kind == "mock" and target.mock_profile:
        served = _mock_models(target.mock_profile, dict(target.mock_overrides))
        if served and model not in served:
            field.fail(
                f"the mock profile {target.mock_profile} serves {', '.join(served)}; "
                f"got {model!r}{hint(model, served)}"
            )
    return model


def _check_sessions(field: Field, workload: Workload) -> None:
    """The session sampler has its own rules (at least one turn, RAG chunk size)."""
    from loadkit.scenario.bridge import session_workload

    try:
        session_workload(workload)
    except ValueError as exc:
        field.fail(str(exc))


def _tokens(field: Field, base_dir: Path) -> Distribution:
    if field.value.kind == "scalar" and isinstance(field.raw(), str):
        field.fail(
            f"expected a token count or a distribution like {{dist: lognormal, median: 900, "
            f"p90: 2700}}, got {units.describe(field.raw())}"
        )
    return distribution(field, "tokens", base_dir)


def _turns(field: Field, base_dir: Path) -> Distribution:
    dist = _tokens(field, base_dir)
    if dist.quantile(1.0) < 0.5:
        field.fail("a session needs at least 1 turn (draws are rounded, at least 1)")
    return dist


def _rag(field: Field, base_dir: Path) -> RagStep:
    m = field.mapping(
        ("embed_tokens", "retrieval_delay", "context_tokens"),
        required=("embed_tokens", "context_tokens"),
    )
    context = _tokens(m.req("context_tokens"), base_dir)
    if context.quantile(0.5) < 4:
        m.req("context_tokens").fail("the retrieved context needs at least 4 tokens")
    return RagStep(
        embed_tokens=_tokens(m.req("embed_tokens"), base_dir),
        retrieval_delay_s=m.opt(
            "retrieval_delay", lambda f: distribution(f, "seconds", base_dir), Constant(0.0)
        ),
        context_tokens=context,
    )


# the calls each workload kind makes (a RAG turn embeds, then chats)
_CALLS = {"chat": ("chat",), "completions": ("completions",), "embeddings": ("embeddings",)}
_CALLS["rag"] = ("embeddings", "chat")


def _check_api_serves(field: Field, kind: str, api_name: str) -> None:
    """A workload whose calls the target's API has no route for (an Anthropic target has
    no embeddings, a team's own service one request shape) is one line, not a run of 404s."""
    from loadkit.apis.registry import api_of

    api = api_of(api_name)
    missing = [c for c in _CALLS[kind] if c not in api.kinds]
    if missing:
        field.fail(
            f"kind {kind} makes {' and '.join(missing)} calls, which the target's API "
            f"({api_name}) does not have (it has: {', '.join(api.kinds)})"
        )
