"""The pytest plugin (``stepwork.testing.plugin``, entry point ``pytest11``), run the way users run it:
generated test files in a fresh directory, collected and run by pytest through ``pytester``."""

from __future__ import annotations

import os
import re
import secrets
import textwrap
from collections.abc import Iterator

import pytest

pytest_plugins = ["pytester"]

# What a user's pytest configuration holds for async tests (pytest-asyncio in auto mode).
INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""

PG_ADMIN_URL = os.environ.get("STEPWORK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _project(pytester: pytest.Pytester, source: str) -> None:
    """A user's project: an ini enabling asyncio auto mode and one test module."""
    pytester.makeini(INI)
    pytester.makepyfile(test_user=textwrap.dedent(source))


def _outcomes_by_test(stdout: str) -> dict[str, str]:
    """``{test id: PASSED/FAILED/...}`` from the lines of a ``-v`` run."""
    found = {}
    for match in re.finditer(r"^test_user\.py::(\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)", stdout, re.M):
        found[match.group(1)] = match.group(2)
    return found


@pytest.fixture
def throwaway_pg_url() -> Iterator[str]:
    """A PostgreSQL database created for this test and dropped after it."""
    backends = os.environ.get("STEPWORK_TEST_BACKENDS", "sqlite-memory,sqlite-file,postgres")
    if "postgres" not in backends:
        pytest.skip("PostgreSQL is left out by STEPWORK_TEST_BACKENDS")
    import psycopg

    name = f"stepwork_plugin_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}); `make test` starts it.")
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_plugin_is_registered_and_documents_its_option(pytester: pytest.Pytester) -> None:
    """The entry point loads the plugin without any conftest: its option is in ``pytest --help``."""
    pytester.makeini(INI)
    result = pytester.runpytest_inprocess("--help")
    result.stdout.fnmatch_lines(["*--stepwork-postgres-url*"])
    assert result.ret == 0


def test_an_async_test_with_the_engine_and_the_clock_passes(pytester: pytest.Pytester) -> None:
    """A generated test using stepwork_engine and stepwork_clock: an hour-long retry interval fires
    when the clock is advanced, and the engine is the one registered in its container."""
    _project(pytester, """
        import time

        from stepwork import Modules, StepContext, create_step, create_workflow

        def flaky(value, ctx: StepContext):
            if ctx.attempt == 1:
                raise ConnectionError("try again later")
            return value * 2

        flaky_step = create_step({"name": "plugin-flaky", "max_retries": 1, "retry_interval": 3600}, flaky)
        retried = create_workflow({"name": "plugin-retried", "retention_time": 60}, lambda n: flaky_step(n))

        async def test_retry_after_an_hour(stepwork_engine, stepwork_clock):
            started = time.monotonic()
            assert stepwork_engine.container.resolve(Modules.WORKFLOW_ENGINE) is stepwork_engine
            assert stepwork_engine.clock is stepwork_clock
            first = await retried(stepwork_engine.container).run(21, transaction_id="t-1")
            assert first.transaction.state == "invoking"
            before = stepwork_clock.time()
            await stepwork_clock.advance(3600)
            assert stepwork_clock.time() == before + 3600
            [row] = await stepwork_engine.list_workflow_executions({"workflow_id": "plugin-retried"})
            assert row.state == "done"
            assert row.context["data"]["invoke"]["plugin-flaky"] == 42
            assert time.monotonic() - started < 1
    """)
    result = pytester.runpytest_inprocess("-v")
    result.assert_outcomes(passed=1)
    assert _outcomes_by_test(result.stdout.str()) == {"test_retry_after_an_hour[stepwork-memory]": "PASSED"}


ISOLATION_TESTS = """
    from stepwork import create_step, create_workflow
    from stepwork.testing import FakeClock

    START = FakeClock().time()
    keep = create_step("plugin-keep", lambda value: value)
    kept = create_workflow({"name": "plugin-kept", "retention_time": 86400}, lambda value: keep(value))

    async def test_first_runs_and_stores_a_workflow(stepwork_engine, stepwork_clock):
        stepwork_engine.container.register("marker", "first test")
        await stepwork_engine.run(kept, 1, transaction_id="isolation-1")
        await stepwork_clock.advance(60)
        rows = await stepwork_engine.list_workflow_executions({"workflow_id": "plugin-kept"})
        assert [r.transaction_id for r in rows] == ["isolation-1"]

    async def test_second_sees_nothing_of_it(stepwork_engine, stepwork_clock):
        assert await stepwork_engine.list_workflow_executions({"workflow_id": "plugin-kept"}) == []
        assert stepwork_clock.time() == START
        assert not stepwork_engine.container.has("marker")
"""


def test_each_test_gets_its_own_engine_clock_and_container(pytester: pytest.Pytester) -> None:
    """An execution stored in one test is not listed in the next; the clock starts over and the
    container is new."""
    _project(pytester, ISOLATION_TESTS)
    result = pytester.runpytest_inprocess("-v")
    result.assert_outcomes(passed=2)


def test_a_scheduled_workflow_defined_in_a_test_does_not_run_in_the_next(pytester: pytest.Pytester) -> None:
    """A scheduled workflow one test defines is not run by the next test's engine when its clock
    passes a tick. (In a subprocess: the workflow must not stay registered in this process.)"""
    _project(pytester, """
        from stepwork import create_step, create_workflow

        ticks = []

        async def test_defines_a_daily_workflow(stepwork_engine, stepwork_clock):
            tick = create_step("plugin-tick", lambda t: ticks.append(t["scheduled_for"]))
            create_workflow({"name": "plugin-daily", "schedule": "0 0 * * *", "retention_time": 7 * 86400},
                            lambda t: tick(t))
            await stepwork_clock.advance(0)
            await stepwork_clock.advance(86400)
            assert len(ticks) == 1

        async def test_the_next_engine_does_not_run_it(stepwork_engine, stepwork_clock):
            await stepwork_clock.advance(86400)
            assert await stepwork_engine.list_workflow_executions({"workflow_id": "plugin-daily"}) == []
            assert len(ticks) == 1
    """)
    result = pytester.runpytest_subprocess("-v")
    assert _outcomes_by_test(result.stdout.str()) == {
        "test_defines_a_daily_workflow[stepwork-memory]": "PASSED",
        "test_the_next_engine_does_not_run_it[stepwork-memory]": "PASSED",
    }


def test_a_postgres_url_runs_engine_tests_on_memory_and_on_postgres(pytester: pytest.Pytester,
                                                                    throwaway_pg_url: str) -> None:
    """``--stepwork-postgres-url`` parametrizes every test using stepwork_engine: once in memory,
    once on PostgreSQL (ids stepwork-memory and stepwork-postgresql), and both pass."""
    _project(pytester, """
        from stepwork import create_step, create_workflow

        shout = create_step("plugin-shout", lambda text: text.upper())
        shouting = create_workflow({"name": "plugin-shouting", "retention_time": 60}, lambda text: shout(text))

        async def test_stored_and_read_back(stepwork_engine):
            result = await stepwork_engine.run(shouting, "hello", transaction_id="pg-1")
            assert result.result == "HELLO"
            [row] = await stepwork_engine.list_workflow_executions({"transaction_id": "pg-1"})
            assert row.state == "done"

        def test_without_the_engine_runs_once():
            assert shouting.run_sync("plain").result == "PLAIN"
    """)
    result = pytester.runpytest_inprocess("-v", f"--stepwork-postgres-url={throwaway_pg_url}")
    result.assert_outcomes(passed=3)
    assert _outcomes_by_test(result.stdout.str()) == {
        "test_stored_and_read_back[stepwork-memory]": "PASSED",
        "test_stored_and_read_back[stepwork-postgresql]": "PASSED",
        "test_without_the_engine_runs_once": "PASSED",
    }


def test_the_postgres_variant_is_isolated_per_test_too(pytester: pytest.Pytester, throwaway_pg_url: str) -> None:
    """On PostgreSQL as in memory, an execution stored in one test is not listed in the next."""
    _project(pytester, ISOLATION_TESTS)
    result = pytester.runpytest_inprocess("-v", f"--stepwork-postgres-url={throwaway_pg_url}")
    assert _outcomes_by_test(result.stdout.str()) == {
        "test_first_runs_and_stores_a_workflow[stepwork-memory]": "PASSED",
        "test_first_runs_and_stores_a_workflow[stepwork-postgresql]": "PASSED",
        "test_second_sees_nothing_of_it[stepwork-memory]": "PASSED",
        "test_second_sees_nothing_of_it[stepwork-postgresql]": "PASSED",
    }


def test_the_postgres_url_can_come_from_the_environment(pytester: pytest.Pytester, throwaway_pg_url: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``STEPWORK_TEST_POSTGRES_URL`` does what the option does."""
    monkeypatch.setenv("STEPWORK_TEST_POSTGRES_URL", throwaway_pg_url)
    _project(pytester, """
        async def test_started(stepwork_engine):
            assert stepwork_engine.started
    """)
    result = pytester.runpytest_inprocess("-v")
    assert _outcomes_by_test(result.stdout.str()) == {"test_started[stepwork-memory]": "PASSED",
                                                      "test_started[stepwork-postgresql]": "PASSED"}


def test_the_sqlite_file_engine_works(pytester: pytest.Pytester) -> None:
    """stepwork_sqlite_engine: a started engine on a SQLite file in the test's tmp_path, on the
    test's clock, runs once (not parametrized by the PostgreSQL option)."""
    _project(pytester, """
        from stepwork import create_step, create_workflow
        from stepwork.testing import timeline

        add = create_step("plugin-add", lambda n: n + 1)
        adding = create_workflow({"name": "plugin-adding", "retention_time": 3600}, lambda n: add(n))

        async def test_on_a_file(stepwork_sqlite_engine, stepwork_clock, tmp_path):
            assert stepwork_sqlite_engine.clock is stepwork_clock
            assert (tmp_path / "stepwork.db").exists()
            await stepwork_sqlite_engine.run(adding, 1, transaction_id="file-1")
            [row] = await stepwork_sqlite_engine.list_workflow_executions({"transaction_id": "file-1"})
            assert row.state == "done"
            assert timeline(row).step("plugin-add").input == 1
            await stepwork_clock.advance(3601)
            assert await stepwork_sqlite_engine.cleanup_expired_executions() == 1
    """)
    result = pytester.runpytest_inprocess("-v")
    result.assert_outcomes(passed=1)
    assert _outcomes_by_test(result.stdout.str()) == {"test_on_a_file": "PASSED"}


def test_a_plain_test_uses_run_sync_timeline_and_overrides(pytester: pytest.Pytester) -> None:
    """A plain (non-async) test, no fixture: run_sync with override_steps and fail_step, read with
    timeline."""
    _project(pytester, """
        from stepwork import create_step, create_workflow
        from stepwork.testing import fail_step, override_steps, timeline

        charges = []
        reserve = create_step("plugin-reserve", lambda order: order["qty"],
                              lambda qty: charges.append(("release", qty)))
        charge = create_step("plugin-charge", lambda order: charges.append("real charge") or "ch_real",
                             lambda charge_id: charges.append(("refund", charge_id)))
        ordering = create_workflow("plugin-ordering", lambda order: (reserve(order), charge(order))[1])

        def test_plain():
            with override_steps(ordering, {"plugin-charge": lambda order: "ch_fake"}):
                result = ordering.run_sync({"qty": 2})
            assert result.result == "ch_fake"
            assert timeline(result).invoked == ["plugin-reserve", "plugin-charge"]
            assert charges == []

            with fail_step(ordering, "plugin-charge"):
                failed = ordering.run_sync({"qty": 3}, throw_on_error=False)
            t = timeline(failed)
            assert failed.transaction.state == "reverted"
            assert t.failed == ["plugin-charge"]
            assert t.compensated == ["plugin-charge", "plugin-reserve"]
            assert t.step("plugin-reserve").output == 3
            assert ("release", 3) in charges and "real charge" not in charges
    """)
    result = pytester.runpytest_inprocess("-v")
    result.assert_outcomes(passed=1)


# -- without pytest-asyncio ------------------------------------------------------------------------
# `pip install stepwork pytest` leaves pytest-asyncio out: the engine fixtures cannot run, and the tests
# using them must say so, not fail at collection with "function uses no argument 'stepwork_backend'".

WITHOUT_ASYNCIO_TESTS = """
    from stepwork import create_step, create_workflow

    add = create_step("plugin-no-asyncio-add", lambda n: n + 1)
    adding = create_workflow("plugin-no-asyncio-adding", lambda n: add(n))

    async def test_async_with_the_engine(stepwork_engine, stepwork_clock):
        await stepwork_engine.run(adding, 1)

    def test_sync_with_the_file_engine(stepwork_sqlite_engine):
        pass

    def test_without_an_engine():
        assert adding.run_sync(1).result == 2
"""


def _assert_says_pytest_asyncio_is_missing(result: pytest.RunResult) -> None:
    output = result.stdout.str() + result.stderr.str()
    assert _outcomes_by_test(output) == {
        "test_async_with_the_engine[stepwork-memory]": "ERROR",
        "test_sync_with_the_file_engine": "ERROR",
        "test_without_an_engine": "PASSED",
    }, output
    from stepwork.testing.plugin import NEEDS_ASYNCIO

    assert output.count(NEEDS_ASYNCIO) >= 2, output  # once per test using an engine fixture
    assert 'pip install "stepwork[testing]"' in NEEDS_ASYNCIO
    for confusing in ("uses no argument", "not natively supported", "requested async fixture"):
        assert confusing not in output, output


def test_without_pytest_asyncio_enabled_the_engine_tests_say_it_is_missing(pytester: pytest.Pytester) -> None:
    """pytest-asyncio installed but disabled (``-p no:asyncio``): each test using an engine fixture
    errors at setup with the plugin's message; the others run."""
    _project(pytester, WITHOUT_ASYNCIO_TESTS)
    result = pytester.runpytest_inprocess("-v", "-p", "no:asyncio")
    _assert_says_pytest_asyncio_is_missing(result)


def test_without_pytest_asyncio_installed_the_engine_tests_say_it_is_missing(pytester: pytest.Pytester) -> None:
    """pytest-asyncio not importable at all (a shadowing package raises ImportError; ``-p no:asyncio``
    keeps pytest from loading its entry point): the same message, not a collection error."""
    _project(pytester, WITHOUT_ASYNCIO_TESTS)
    pytester.mkpydir("pytest_asyncio").joinpath("__init__.py").write_text(
        'raise ImportError("No module named \'pytest_asyncio\' (simulated)")\n')
    result = pytester.runpytest_subprocess("-v", "-p", "no:asyncio")
    _assert_says_pytest_asyncio_is_missing(result)
