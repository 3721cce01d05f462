"""What the page computes from a record (stages, progress, durations), and how sessions expire, without
a browser."""

from __future__ import annotations

from typing import Any

from stepwork.http.ui import views
from stepwork.http.ui.sessions import Sessions


def _step(sid: str, depth: int, state: str, started: int | None, nxt: list[str], **more: Any) -> dict[str, Any]:
    return {"id": sid, "depth": depth, "definition": {"action": sid.rsplit(".", 1)[-1], "noCompensation": False},
            "invoke": {"state": state, "status": "ok" if state == "done" else "idle"},
            "compensate": {"state": "dormant", "status": "idle"}, "attempts": 1, "startedAt": started,
            "next": nxt, **more}


def _record(state: str = "invoking") -> dict[str, Any]:
    steps = {
        "_root": {"id": "_root", "next": ["_root.a"]},
        "_root.a": _step("_root.a", 1, "done", 1_000_000, ["_root.a.b", "_root.a.c"]),
        "_root.a.b": _step("_root.a.b", 2, "done", 1_000_250, []),
        "_root.a.c": _step("_root.a.c", 2, "done", 1_000_300, ["_root.a.c.d"]),
        "_root.a.c.d": _step("_root.a.c.d", 3, "invoking", 1_002_000, []),
    }
    return {"state": state, "updated_at": "1970-01-01T00:16:45.000Z", "execution": {"steps": steps},
            "context": {"data": {"payload": {"x": 1}, "invoke": {"a": {"ok": True}}, "compensate": {}},
                        "errors": [{"action": "b", "handler_type": "invoke",
                                    "error": {"name": "ValueError", "message": "no <b>", "stack": "..."}}]}}


def test_the_stages_follow_next_from_the_root_and_parallel_steps_share_one() -> None:
    assert views.stages(_record()) == [["_root.a"], ["_root.a.b", "_root.a.c"], ["_root.a.c.d"]]


def test_progress_counts_the_steps_whose_invoke_settled() -> None:
    p = views.progress(_record())
    assert (p.done, p.total, p.text) == (3, 4, "3 of 4 steps")
    assert views.progress({"execution": {"steps": {"_root": {"id": "_root"}}}}).text == "0 of 0 steps"


def test_a_steps_duration_runs_to_the_next_stages_start_or_to_now_while_it_runs() -> None:
    steps = {s.name: s for s in views.steps_of(_record(), now=1_005.0)}
    assert steps["a"].duration == "250 ms"  # to the earliest start of the next stage
    assert steps["b"].duration == "1.8 s" and steps["c"].duration == "1.7 s"
    assert steps["d"].duration == "3.0 s"  # running: to now
    assert steps["a"].output == '{\n  "ok": true\n}' and steps["b"].output is None
    assert steps["b"].errors == [{"handler": "invoke", "name": "ValueError", "message": "no <b>", "stack": "..."}]
    assert [s.anchor for s in steps.values()] == ["step-1-a", "step-2-b", "step-3-c", "step-4-d"]


def test_times_and_durations_read_well() -> None:
    assert views.time_text("2026-12-05T09:07:07.602Z") == "2026-12-05 09:07:07 UTC"
    assert views.time_text(1_796_461_627_603) == "2026-12-05 09:07:07 UTC"
    assert views.time_text(None) == ""
    assert [views.duration_text(s) for s in (0.012, 1.44, 182, 7500, None)] == \
        ["12 ms", "1.4 s", "3 min 2 s", "2 h 5 min", ""]


def test_a_record_too_deep_to_indent_is_shown_compact() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(3000):
        node["next"] = {}
        node = node["next"]
    text = views.pretty(deep)
    assert text.startswith(('{"next": {"next"', "(too deeply nested"))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_session_ends_after_its_idle_time_and_its_lifetime() -> None:
    clock = Clock()
    sessions = Sessions(idle=60, lifetime=300, clock=clock)
    s = sessions.create("sk_secret", "me")
    assert len(s.id) >= 43 and len(s.csrf) >= 43 and s.id != s.csrf
    clock.now += 59
    assert sessions.get(s.id) is s  # used: its idle time restarts
    clock.now += 59
    assert sessions.get(s.id) is s
    clock.now += 61
    assert sessions.get(s.id) is None  # idle too long
    t = sessions.create("sk_secret", "me")
    for _ in range(7):
        clock.now += 50
        sessions.get(t.id)
    assert sessions.get(t.id) is None  # used all along, but past its lifetime


def test_sessions_are_capped_and_csrf_tokens_compared_exactly() -> None:
    sessions = Sessions(max_sessions=2)
    first, second, third = (sessions.create("k", "me") for _ in range(3))
    assert len(sessions) == 2 and sessions.get(first.id) is None and sessions.get(third.id) is third
    assert second.csrf_matches(second.csrf) and not second.csrf_matches(third.csrf)
    assert not second.csrf_matches(None) and not second.csrf_matches("")
    sessions.end(second.id)
    assert sessions.get(second.id) is None and sessions.get("x" * 500) is None
