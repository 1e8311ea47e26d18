"""Coalesce concurrent requests into micro-batches for the model.

One request with one text is the worst case for a transformer on a CPU: the
matmuls are too small to use the cores. While a batch runs, requests that arrive
queue up and are answered together by the next one, so throughput grows with load.
Two bounds keep latency in check, as text-embeddings-inference does: a batch is
closed ``max_wait_ms`` after its first request arrived (default 0: it takes what is
already queued), and it never holds more
than ``max_batch_tokens`` tokens (each text counted up to the model's
``max_length``), so a request full of long texts is run on its own instead of
delaying short ones behind it. The model runs in one worker thread, which keeps
the event loop free to accept and parse requests.

Past the throughput the model can sustain, a queue only converts overload into
latency without bound. With ``max_queue`` set, a request that would take the number
of waiting texts past it is refused at once (:class:`Overloaded`, answered 503 with
``Retry-After``), so the requests that are accepted keep their latency and a client
or load balancer can retry elsewhere.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


class Overloaded(Exception):
    """The queue is full: the request was not accepted (``retry_after`` seconds is a fair wait)."""

    def __init__(self, queued: int, limit: int, retry_after: int) -> None:
        super().__init__(f"{queued} texts are waiting, the limit is {limit}; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class _Pending:
    texts: list[Any]  # what infer reads: texts, or (text, class) pairs for explanations
    tokens: list[int]
    future: asyncio.Future
    arrived: float = field(default_factory=time.perf_counter)

    cap: int | None = None

    @property
    def cost(self) -> int:
        return sum(self.tokens) if self.cap is None else sum(min(n, self.cap) for n in self.tokens)


class MicroBatcher:
    """Run ``infer(texts, token_counts) -> list[result]`` over coalesced requests.

    Parameters
    ----------
    infer:
        Blocking function answering a batch; called in a single worker thread.
    max_wait_ms:
        How long the first request of a batch may wait for company (0: take only the
        requests already queued, i.e. those that arrived while the last batch ran).
    max_batch_tokens:
        Token budget of one batch.
    max_tokens_per_text:
        Tokens a text counts for at most (the model truncates at ``max_length``).
    on_batch:
        Called with ``(n_texts, n_tokens, seconds)`` after every batch (metrics).
    max_queue:
        Texts that may wait for the model (``None``: no bound); beyond it ``submit``
        raises :class:`Overloaded`.
    """

    def __init__(
        self,
        infer: Callable[[list[Any], list[int]], list[Any]],
        *,
        max_wait_ms: float = 0.0,
        max_batch_tokens: int = 8192,
        max_tokens_per_text: int | None = None,
        on_batch: Callable[[int, int, float], None] | None = None,
        max_queue: int | None = None,
    ) -> None:
        self.infer = infer
        self.max_wait = max_wait_ms / 1000.0
        self.max_batch_tokens = max_batch_tokens
        self.max_tokens_per_text = max_tokens_per_text
        self.on_batch = on_batch
        self.max_queue = max_queue
        self.queued = 0  # texts accepted and not yet handed to the model
        self._rate = 0.0  # texts/s of recent batches, for Retry-After
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmworks-model")
        self._task: asyncio.Task | None = None
        self._carry: _Pending | None = None
        self._stopping = False
        self._last_shared = True

    async def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._task = asyncio.create_task(self._loop(), name="lmworks-batcher")

    async def stop(self) -> None:
        """Finish everything queued, then stop (graceful shutdown)."""
        if self._task is not None:
            self._stopping = True
            await self._queue.put(None)  # queued after every accepted request, so those are answered
            await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    async def submit(self, texts: Sequence[Any], token_counts: Sequence[int]) -> list[Any]:
        """Queue one request's texts; resolve with one result per text, in order."""
        if self._task is None or self._task.done() or self._stopping:
            raise RuntimeError("the batcher is not running")
        if self.max_queue is not None and self.queued and self.queued + len(texts) > self.max_queue:
            wait = self.queued / self._rate if self._rate > 0 else 1.0
            raise Overloaded(self.queued, self.max_queue, max(1, math.ceil(wait)))
        self.queued += len(texts)
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(list(texts), list(token_counts), future, cap=self.max_tokens_per_text))
        return await future

    async def _next_batch(self) -> tuple[list[_Pending], bool]:
        """Block for a first request, then gather more until the wait or the budget runs out."""
        first = self._carry or await self._queue.get()
        self._carry = None
        if first is None:
            return [], True
        batch, cost = [first], first.cost
        # Wait for company only under concurrent load (the last batch was shared): a lone
        # client would otherwise pay max_wait on every request for nothing.
        deadline = first.arrived + (self.max_wait if self._last_shared else 0.0)
        stop = False
        while cost < self.max_batch_tokens:
            remaining = deadline - time.perf_counter()
            try:
                item = self._queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(
                    self._queue.get(), remaining
                )
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if item is None:
                stop = True
                break
            if cost + item.cost > self.max_batch_tokens:
                self._carry = item  # opens the next batch instead of overflowing this one
                break
            batch.append(item)
            cost += item.cost
        return batch, stop

    async def _loop(self) -> None:
        while True:
            batch, stop = await self._next_batch()
            if batch:
                await self._run(batch)
            if stop:
                return

    async def _run(self, batch: list[_Pending]) -> None:
        self._last_shared = len(batch) > 1
        texts = [t for p in batch for t in p.texts]
        self.queued -= len(texts)
        tokens = [n for p in batch for n in p.tokens]
        started = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._executor, self.infer, texts, tokens)
        except Exception as err:  # noqa: BLE001 - delivered to every waiting request
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(err)
            return
        seconds = time.perf_counter() - started
        rate = len(texts) / max(seconds, 1e-6)
        self._rate = 0.8 * self._rate + 0.2 * rate if self._rate else rate  # smoothed, for Retry-After
        if self.on_batch is not None:
            self.on_batch(len(texts), sum(p.cost for p in batch), seconds)
        offset = 0
        for p in batch:
            if not p.future.done():  # the client may have gone away
                p.future.set_result(results[offset: offset + len(p.texts)])
            offset += len(p.texts)
