"""The detail routes' bodies: a finished execution's encoded record, kept and sent again with an ETag.

A finished (terminal) execution no longer changes: a new write would bump its ``version`` (a
compensation after ``done``), and retention changes ``retention_time``, which the key holds too. Its
record is assembled from the execution row, its step rows and its definition's template, then
encoded: for a 1,000-step workflow that is 25.6 MB (Medusa's step ids repeat their ancestors) and
~200 ms. So the encoded body of a finished execution is kept, per engine, under (id, version,
updated_at, retention_time, fields), in a least-recently-used cache bounded in bytes; a request
reads the row (one indexed read) and answers with the kept body, or with 304 when its
``If-None-Match`` names the body's ETag. Unfinished executions are assembled every time and have
no ETag (their step rows move without a version bump).

A client that accepts gzip (browsers, httpx, the js-sdk's fetch) gets a kept body compressed, once,
at level 6 and kept beside it: Medusa's step ids repeat so much that 25.6 MB become ~350 KB, which
a client inflates in ~15 ms, where moving the plain bytes over loopback alone takes ~30 ms.
"""

from __future__ import annotations

import gzip
import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Sequence

from fastapi import Request
from fastapi.responses import Response

from stepwork.engine.engine import WorkflowEngine
from stepwork.engine.listing import assemble_row
from stepwork.http.deepjson import record_body
from stepwork.http.params import select
from stepwork.storage.base import ExecutionRow
from stepwork.storage.rows import FINISHED

__all__ = ["MAX_CACHED_BYTES", "BodyCache", "record_response"]

MAX_CACHED_BYTES = 64 * 1024 * 1024  # per engine: two records of 1,000-step workflows, thousands of short ones
_GZIP_FROM = 1024  # bytes: a smaller body gains too little from compression to be worth it


class BodyCache:
    """Encoded bodies by key, least recently used first out, at most ``limit`` bytes in all."""

    def __init__(self, limit: int = MAX_CACHED_BYTES) -> None:
        self.limit = limit
        self.size = 0
        self._bodies: OrderedDict[tuple[object, ...], bytes] = OrderedDict()

    def get(self, key: tuple[object, ...]) -> bytes | None:
        """The body kept under ``key`` (now the most recently used), or ``None``."""
        body = self._bodies.get(key)
        if body is not None:
            self._bodies.move_to_end(key)
        return body

    def put(self, key: tuple[object, ...], body: bytes) -> None:
        """Keep ``body`` (a body over the whole limit is not kept), dropping the least recently used."""
        if len(body) > self.limit:
            return
        old = self._bodies.pop(key, None)
        self.size -= len(old) if old is not None else 0
        self._bodies[key] = body
        self.size += len(body)
        while self.size > self.limit:
            _, dropped = self._bodies.popitem(last=False)
            self.size -= len(dropped)


_CACHES: weakref.WeakKeyDictionary[WorkflowEngine, BodyCache] = weakref.WeakKeyDictionary()


def _cache(engine: WorkflowEngine) -> BodyCache:
    cache = _CACHES.get(engine)
    if cache is None:
        cache = _CACHES[engine] = BodyCache()
    return cache


def _etag(key: tuple[object, ...]) -> str:
    return '"' + hashlib.sha256(repr(key).encode()).hexdigest()[:32] + '"'


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _matches(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags or "*" in tags


async def record_response(request: Request, engine: WorkflowEngine, row: ExecutionRow,
                          fields: Sequence[str]) -> Response:
    """``{"workflow_execution": record}`` of ``row`` with ``fields``; kept, and with an ETag, once finished."""
    if row.state not in FINISHED:
        execution = await assemble_row(engine, row)
        return _response(record_body("workflow_execution", select(execution.to_dict(), fields)))
    key = (row.id, row.version, row.updated_at, row.retention_time, tuple(fields))
    etag = _etag(key)
    zipped = _accepts_gzip(request)
    # One ETag per representation (a cache must not answer a plain request with gzip bytes).
    tag = etag[:-1] + '-gzip"' if zipped else etag
    if _matches(request, etag) or _matches(request, etag[:-1] + '-gzip"'):
        return Response(status_code=304, headers={"ETag": tag, "Vary": "Accept-Encoding"})
    cache = _cache(engine)
    body = cache.get(key)
    if body is None:
        execution = await assemble_row(engine, row)
        body = record_body("workflow_execution", select(execution.to_dict(), fields))
        cache.put(key, body)
    if zipped and len(body) >= _GZIP_FROM:
        gz_key = (*key, "gzip")
        compressed = cache.get(gz_key)
        if compressed is None:
            compressed = gzip.compress(body, 6, mtime=0)
            cache.put(gz_key, compressed)
        return Response(compressed, media_type="application/json",
                        headers={"ETag": tag, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
    return _response(body, etag)


def _response(body: bytes, etag: str | None = None) -> Response:
    headers = {"ETag": etag, "Vary": "Accept-Encoding"} if etag else None
    return Response(body, media_type="application/json", headers=headers)
