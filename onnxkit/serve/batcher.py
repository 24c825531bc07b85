"""Dynamic batching, as Triton does it: concurrent requests wait in a queue up to `max_delay_s`
and are run together, up to `max_batch` rows, in one onnxruntime run (one worker, so runs never
compete for the cores); results are split back to each request.

How long to wait adapts to the load, never past `max_delay_s`: the worker waits for more requests
only while its batch has fewer requests than the previous run had, or while other requests are
being read (`arriving`, counted by the app between a request's arrival and its submit); whatever is
already queued joins at once. So a lone client is answered at once (no delay: at one client the
batching server answers as fast as the plain one), N closed-loop clients settle into batches of N
without waiting out the delay for requests that cannot come, and a growing load still fills
batches up to `max_batch`. Triton's dynamic batcher instead always waits out the delay until a
preferred batch size is reached."""
import asyncio

import anyio.to_thread


def _signature(feeds):
    """Requests can share a run when every input has the same dtype and trailing dims."""
    return tuple((n, v.dtype.str, v.shape[1:]) for n, v in sorted(feeds.items()))


def _rows(feeds):
    return next(iter(feeds.values())).shape[0]


class DynamicBatcher:
    def __init__(self, served, max_batch, max_delay_s):
        self.served, self.max_batch, self.max_delay_s = served, max_batch, max_delay_s
        self.queue = asyncio.Queue()
        self._carry = None
        self._task = None
        self.arriving = 0  # requests being read and decoded, not yet submitted (the app counts them)
        self._last_requests = 1  # how many requests the previous run served

    def start(self):
        self._task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self):
        """Finish what is queued, then stop the worker."""
        while (not self.queue.empty() or self._carry is not None) and self._task and not self._task.done():
            await asyncio.sleep(0.005)
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def submit(self, feeds):
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((feeds, fut))
        return await fut

    async def _next(self, timeout=None):
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        if timeout is None:
            return await self.queue.get()
        if not self.queue.empty():
            return self.queue.get_nowait()
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _worker(self):
        while True:
            batch = []
            try:
                await self._one_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001  never leave a request waiting on a dead worker
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)

    async def _one_batch(self, batch):
        """Collect up to max_batch rows (waiting at most max_delay_s for more), run them, answer."""
        loop = asyncio.get_running_loop()
        first = await self._next()
        batch.append(first)
        rows, sig = _rows(first[0]), _signature(first[0])
        deadline = loop.time() + self.max_delay_s
        while rows < self.max_batch:
            # wait (until the deadline) only while fewer requests than last time are in, or more are being read
            wait = len(batch) < self._last_requests or self.arriving > 0
            item = await self._next(deadline - loop.time() if wait else 0)
            if item is None:
                break
            if rows + _rows(item[0]) > self.max_batch or _signature(item[0]) != sig:
                self._carry = item
                break
            batch.append(item)
            rows += _rows(item[0])
        self._last_requests = len(batch)
        live = [(f, fut) for f, fut in batch if not fut.done()]  # a client that went away
        if not live:
            return
        results = await anyio.to_thread.run_sync(self.served.run_batch, [f for f, _ in live])
        for (_, fut), r in zip(live, results):
            if not fut.done():
                fut.set_exception(r) if isinstance(r, Exception) else fut.set_result(r)
