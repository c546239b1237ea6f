"""The scoring call path: adaptive micro-batching behind the unchanged `score.py` contract, and back-pressure.

A scoring request joins its deployment's queue and the next turn of the event loop scores it. Scoring runs
on the event loop, so every request that arrived while a call ran is read and queued by the time the next
call starts: the next call takes them together, its rows concatenated into one `{"data": [...]}` for
`run()`, and its `"result"` is split back per request, in order. A lone request is scored as it came (its
text untouched) in its own handler, after yielding once to the loop: nobody waits for company. A call takes at most `max_rows`
rows (a larger request is scored alone); while requests wait, calls follow each other for up to
`TURN_SECONDS` before the loop answers them and reads new requests.

Only a bundle whose manifest says `[score] micro_batching = true` gets rows of several requests at once
(`Deployment.micro_batching`); for the others, and with batching off, each call scores one request, in
arrival order, as Azure ML's server does. A request is batched only when its body is exactly
`{"data": [a non-empty list]}`; any other body is scored alone, so its error (or answer) is its own. Rows that
are flat lists are counted without parsing them (`_Request.row_count`): `run()` parses them, once.

When a batched call fails (a bad row raises `ValueError`) or its answer is not one result per row, each of its
requests is scored again alone: a request with bad rows gets its own error, the others their answers.

Back-pressure: past `max_queue` requests waiting, `admit()` refuses a scoring request with 503 (or
`busy_status`: the Azure ML emulator's endpoints answer 429, as a managed endpoint does) and `Retry-After`, before
its body is read; what the server holds is then bounded by the queue (each request at
most the body limit) and by the open connections.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from typing import Any

import orjson

from infra.endpoint_server.errors import HttpError
from infra.endpoint_server.traffic import Deployment

RETRY_AFTER_SECONDS = 1
# Scoring calls go on for this long in one turn of the event loop while requests wait: under overload the loop
# also answers every 503 of a turn, and one call per turn would leave scoring a small share of the server.
TURN_SECONDS = 0.005
_UNREAD: Any = object()  # a request's rows before they are counted
_DATA_KEY = re.compile(rb'\s*\{\s*"data"\s*:\s*\[')
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"')  # deleted to see a body's shape
_SHAPE_HEAD, _ROW_SHAPE, _SHAPE_TAIL = b'{""[', b"[]", b"]}"


class _Request:
    __slots__ = ("future", "raw", "rows", "text")

    def __init__(self, text: str, future: asyncio.Future[dict[str, Any]], raw: bytes | None = None) -> None:
        self.text = text
        self.raw = raw
        self.future = future
        self.rows: int | None = _UNREAD

    def row_count(self) -> int | None:
        """How many rows the request has when its body is exactly `{"data": [...]}` with at least one row, else None.

        Rows that are flat lists (`{"data": [[1, 2], [3, 4]]}`, what the samples take) are counted without parsing:
        with every byte but the JSON's brackets, braces and quotes deleted (C speed, a quarter of parsing the rows
        with orjson), the body must read `{""[` + `[]` per row + `]}`, the key being `"data"`. The count is exact
        for valid JSON; an invalid body fails the batched call, and then each request is scored alone. Other bodies
        are parsed (orjson) and counted. `run()` parses the rows once: in the batched call."""
        if self.rows is _UNREAD:
            raw = self.raw if self.raw is not None else self.text.encode()
            self.rows = _flat_rows(raw)
            if self.rows is None:
                self.rows = _parsed_rows(raw)
        return self.rows


def _flat_rows(raw: bytes) -> int | None:
    """The number of rows of `{"data": [[...], ...]}` whose rows hold no list, object or string, else None."""
    if _DATA_KEY.match(raw) is None or raw[raw.rfind(b"]") + 1 :].strip() != b"}":  # nothing but `}` after the rows
        return None
    shape = raw.translate(None, _NOT_STRUCTURE)
    count = (len(shape) - len(_SHAPE_HEAD) - len(_SHAPE_TAIL)) // 2
    if count < 1 or shape != _SHAPE_HEAD + _ROW_SHAPE * count + _SHAPE_TAIL:
        return None
    return count


def _parsed_rows(raw: bytes) -> int | None:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    data = body.get("data") if type(body) is dict and len(body) == 1 else None
    return len(data) if type(data) is list and data else None


class Scorer:
    """Scores requests for all of an endpoint's deployments, one queue each, taking turns."""

    def __init__(
        self, *, batching: bool = True, max_rows: int = 1000, max_queue: int = 128, busy_status: int = 503
    ) -> None:
        self.batching = batching
        self.max_rows = max_rows
        self.max_queue = max_queue
        self.busy_status = busy_status
        self.waiting = 0  # requests queued, not yet in a scoring call
        self._queues: dict[int, deque[_Request]] = {}  # by id() of the Deployment: a dataclass hashes slowly
        self._turns: deque[Deployment] = deque()  # deployments with requests waiting, in the order they take turns
        self._scheduled = False

    def admit(self) -> None:
        """Refuse a scoring request while the queue is full (503, Retry-After)."""
        if self.waiting >= self.max_queue:
            raise HttpError(
                self.busy_status,
                f"the endpoint is busy: {self.waiting} requests are waiting to be scored (MLOPS_ENDPOINT_MAX_QUEUE="
                f"{self.max_queue}); retry after {RETRY_AFTER_SECONDS} s",
                [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())],
            )

    async def score(self, deployment: Deployment, text: str, raw: bytes | None = None) -> dict[str, Any]:
        """`deployment`'s answer to the request body `text` (`raw`: its bytes, when at hand); raises what its
        `run()` raised for this request."""
        loop = asyncio.get_running_loop()
        request = _Request(text, loop.create_future(), raw)
        queue = self._queues.get(id(deployment))
        if queue is None:
            queue = self._queues[id(deployment)] = deque()
            self._turns.append(deployment)
        queue.append(request)
        self.waiting += 1
        if not self._scheduled:  # idle: this request leads; the requests read in this turn queue behind it
            self._scheduled = True
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:  # its handler is cancelled: the calls are due all the same
                loop.call_soon(self._next_calls)
                raise
            self._next_calls()  # its own call comes first, so its answer is there without another turn
        return await request.future

    def _next_calls(self) -> None:
        """Scoring calls, the deployments taking turns, until nothing waits or the turn's time is spent; the
        loop's next turn for what is left (after it has answered these requests and read new ones). While
        `_scheduled`, a call is due: at the latest in the loop's next turn."""
        started = time.perf_counter()
        try:
            while self._turns:
                deployment = self._turns.popleft()
                queue = self._queues[id(deployment)]
                batch = self._take(queue, self.batching and deployment.micro_batching)
                self.waiting -= len(batch)
                if queue:
                    self._turns.append(deployment)
                else:
                    del self._queues[id(deployment)]
                if len(batch) == 1:
                    _score_alone(deployment, batch[0])
                else:
                    _score_together(deployment, batch)
                if time.perf_counter() - started >= TURN_SECONDS:
                    break
        finally:  # whatever happened, what still waits is scored in the loop's next turn
            if self._turns:
                asyncio.get_running_loop().call_soon(self._next_calls)
            else:
                self._scheduled = False

    def _take(self, queue: deque[_Request], combine: bool) -> list[_Request]:
        """The requests of the next call: the first waiting, and those after it while their rows fit in one call."""
        first = queue.popleft()
        if not combine or not queue:
            return [first]
        rows = first.row_count()
        if rows is None:
            return [first]
        batch, total = [first], rows
        while queue:
            rows = queue[0].row_count()
            if rows is None or total + rows > self.max_rows:
                break
            batch.append(queue.popleft())
            total += rows
        return batch


def _concatenated(batch: list[_Request]) -> str:
    """One `{"data": [...]}` of all the batch's rows, in order, cut from the requests' own texts: each is exactly
    `{"data": [rows]}` (checked when counted), so its rows are the text between its first `[` and its last `]`
    (the key holds neither). Costs a copy; `run()` parses the rows, once."""
    inner = [request.text[request.text.index("[") + 1 : request.text.rindex("]")] for request in batch]
    return '{"data":[' + ",".join(inner) + "]}"


def _score_alone(deployment: Deployment, request: _Request) -> None:
    try:
        answer = deployment.module.run(request.text)
    except BaseException as exc:  # noqa: BLE001 - the request's own error, raised in its handler as before batching
        if not request.future.done():
            request.future.set_exception(exc)
        return
    if not request.future.done():
        request.future.set_result(answer)


def _score_together(deployment: Deployment, batch: list[_Request]) -> None:
    """One call for all of `batch`'s rows; on any failure, each request alone (its own answer or error)."""
    total = sum(request.rows or 0 for request in batch)
    try:
        answer = deployment.module.run(_concatenated(batch))
        result = answer["result"] if type(answer) is dict and len(answer) == 1 else None
    except BaseException:  # noqa: BLE001 - which request's rows failed is found by scoring each alone
        result = None
    if type(result) is not list or len(result) != total:
        for request in batch:
            _score_alone(deployment, request)
        return
    start = 0
    for request in batch:
        end = start + (request.rows or 0)
        if not request.future.done():
            request.future.set_result({"result": result[start:end]})
        start = end
