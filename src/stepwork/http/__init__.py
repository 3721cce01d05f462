"""The HTTP admin API: Medusa's admin workflow-execution routes over a ``WorkflowEngine`` (FastAPI).

Modules, by job: :mod:`.app` (``create_app``), :mod:`.executions` (reading routes), :mod:`.actions`
(run, step completions, retry, cancel), :mod:`.sse` (subscriptions as Server-Sent Events),
:mod:`.keys` (API keys stored hashed), :mod:`.auth` (checking a request's key), :mod:`.params`
(query strings and ids), :mod:`.models` (bodies), :mod:`.errors` (JSON errors), :mod:`.middleware`
(body limit, credentials out of logs, no tracebacks), :mod:`.openapi`, :mod:`.runtime` (shared state,
work outliving a request), :mod:`.scope` (``request_scope``, the container of an application route's
request).
"""

from stepwork.http.app import create_app, static_keys_from_env
from stepwork.http.keys import ApiKeyInfo, ApiKeys
from stepwork.http.scope import request_scope

__all__ = ["ApiKeyInfo", "ApiKeys", "create_app", "request_scope", "static_keys_from_env"]
