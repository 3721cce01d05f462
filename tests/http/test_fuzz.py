"""Fuzzing with schemathesis (its own CLI) against /openapi.json with a valid key: a bounded number of
generated requests per route, none answered 500, every response as the document says."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from tests.http.conftest import Served

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


async def test_schemathesis_finds_no_500_and_no_response_off_the_schema(served: Served, tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("schemathesis")
    command = [str(cli), "run", f"{served.base_url}/openapi.json", "--header", f"Authorization: Bearer {served.key}",
               "--checks", CHECKS, "--max-examples", "6", "--phases", "examples,fuzzing",
               "--exclude-path-regex", "subscribe$",  # endless streams: tested in test_sse.py
               "--seed", "9", "--generation-deterministic", "--request-timeout", "10", "--workers", "1",
               "--no-color", "--warnings", "off"]
    proc = await asyncio.create_subprocess_exec(*command, cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT,
                                                env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
    try:  # within pytest's own 60 s timeout, so that the process is always ended here
        out, _ = await asyncio.wait_for(proc.communicate(), 50)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        raise AssertionError("schemathesis did not finish within 50 s:\n" + out.decode(errors="replace")[-6000:]) \
            from None
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-6000:]
    cases = re.search(r"Test cases:\s+(\d+) generated, (\d+) passed", report)
    operations = re.search(r"Selected: (\d+)/\d+\s+Tested: (\d+)", report)
    assert cases and operations, report[-3000:]
    assert int(cases.group(1)) >= 9 and cases.group(2) == cases.group(1), cases.group(0)
    assert int(operations.group(1)) >= 9 and operations.group(2) == operations.group(1), operations.group(0)
    assert served.key not in "\n".join(served.log.server_lines())
