"""Training data read from disk while the model trains, in torch DataLoader worker processes.

A streamed data set (e.g. plume.images.streaming.StreamedImages) keeps no decoded copy of itself: it holds a
`RowReader`, whose read(rows) decodes the rows asked for (image files, rows of a memory-mapped array). The training
loop knows which rows each step will read before it reads them: the indices of micro-batch j of step k are a
function of (seed, k, j) (plume.train.batches.micro_batch_reads), so the loop hands the data the whole plan, and a
`Prefetcher` reads it ahead in DataLoader workers (the plan is the DataLoader's batch sampler; the loader's own
workers, prefetching and shutdown do the scheduling). When the data then asks for rows, the prefetched rows at the
head of the queue are used if they are the ones asked for, else the rows are read at once in this process: what
a batch holds never depends on the workers, only how fast it arrives. The random augmentations, training times and
noise are drawn in the main process as for data in memory, so a streamed run computes bit for bit the steps of the
same run in memory, and resumes exactly.

Under torchrun each rank plans only the RNG blocks of its own rows (plume.train.batches.blocks), so it reads only
its part of each batch.

The Prefetcher measures two rates that the log shows side by side: rows decoded per second (the workers' capacity:
rows over the seconds the readers spent, times the number of workers) and rows consumed per second by the loop. A
loader that keeps up decodes faster than the loop consumes.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import PlumeError

PREFETCH_BATCHES = 8  # read requests each worker keeps ready (a request is one RNG block, <= 16 rows)


@runtime_checkable
class RowReader(Protocol):
    """Rows of a data set on disk, read on demand (in a DataLoader worker or in the main process)."""

    def __len__(self) -> int: ...

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The rows (b,) as one array (b, ...), e.g. uint8 pixels (b, H, W, C)."""


@runtime_checkable
class StreamedData(Protocol):
    """Training data that can read ahead: stream(plan) prefetches the training indices in `plan` (tensors (b,), in
    the order batch() will ask for them) while the context is open, and yields its Prefetcher."""

    def stream(self, plan: Iterable[torch.Tensor]) -> contextlib.AbstractContextManager: ...


class _Rows(Dataset):
    """A RowReader as a DataLoader data set fetched a request at a time (DataLoader calls __getitems__ with the
    batch sampler's list): the rows asked for, what they hold, and the seconds the read took."""

    def __init__(self, reader: RowReader):
        self.reader = reader

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, row: int) -> Any:
        return self.__getitems__([row])

    def __getitems__(self, rows: list[int]) -> tuple[np.ndarray, Any, float]:
        began = time.perf_counter()
        wanted = np.asarray(rows, dtype=np.int64)  # (b,)
        try:
            read: Any = self.reader.read(wanted)
        except PlumeError as error:  # raised in the main process by take(), as the reader wrote it
            read = error
        return wanted, read, time.perf_counter() - began


def _as_is(fetched: Any) -> Any:
    """The DataLoader's collate_fn: __getitems__ already returns the whole request."""
    return fetched


class _Plan:
    """The DataLoader's batch sampler: the planned requests as lists of source rows."""

    def __init__(self, plan: Iterable[np.ndarray]):
        self.plan = plan

    def __iter__(self) -> Iterator[list[int]]:
        return (np.asarray(rows).tolist() for rows in self.plan)


class Prefetcher:
    """Reads the planned requests of `reader` ahead in `workers` DataLoader processes (0: in this process, when
    asked); take(rows) hands out the request at the head of the queue when it holds exactly `rows`."""

    def __init__(self, reader: RowReader, plan: Iterable[np.ndarray], workers: int = 0):
        self.workers = int(workers)
        loader = DataLoader(_Rows(reader), batch_sampler=_Plan(plan), num_workers=self.workers, collate_fn=_as_is,
                            prefetch_factor=PREFETCH_BATCHES if self.workers else None,
                            worker_init_fn=_one_thread if self.workers else None)
        self._batches = iter(loader)
        self._head: Optional[tuple[np.ndarray, np.ndarray, float]] = None
        self._done = False
        self.began = time.monotonic()
        self.decoded = self.consumed = self.misses = 0
        self.reading_seconds = self.waiting_seconds = 0.0

    def _peek(self) -> Optional[tuple[np.ndarray, np.ndarray, float]]:
        if self._head is None and not self._done:
            began = time.monotonic()
            self._head = next(self._batches, None)
            self.waiting_seconds += time.monotonic() - began
            self._done = self._head is None
            if self._head is not None:
                self.decoded += len(self._head[0])
                self.reading_seconds += self._head[2]
        return self._head

    def take(self, rows: np.ndarray) -> Optional[np.ndarray]:
        """What the reader read for `rows` (b,) if that is the next planned request, else None (not in the plan:
        the caller reads it itself)."""
        head = self._peek()
        if head is None or not np.array_equal(head[0], rows):
            self.misses += 1
            return None
        self._head = None
        if isinstance(head[1], PlumeError):
            raise head[1]
        self.consumed += len(rows)
        return head[1]

    def rates(self) -> dict[str, float]:
        """decoded_per_second: the readers' capacity (rows per second of reading, times the workers);
        consumed_per_second: rows the loop took per second of wall time; waiting: the fraction of that time the loop
        spent waiting for the loader."""
        wall = max(time.monotonic() - self.began, 1e-9)
        capacity = self.decoded / self.reading_seconds * max(self.workers, 1) if self.reading_seconds else float("nan")
        return {"decoded_per_second": capacity, "consumed_per_second": self.consumed / wall,
                "waiting": self.waiting_seconds / wall}

    def close(self) -> None:
        """Stop the workers (the plan may run past a run stopped early by a time budget or a signal)."""
        shutdown = getattr(self._batches, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        self._done, self._head = True, None


def _one_thread(worker: int) -> None:
    """A worker decodes with one thread: the cores belong to the model."""
    torch.set_num_threads(1)


class NpyRows:
    """Rows of a C-ordered .npy file (N, ...), each read with os.pread at its offset: the file stays the
    memory-mappable .npy any tool opens, but reading rows copies them without mapping the file."""

    def __init__(self, path: Path):
        array = np.load(path, mmap_mode="r")
        if not array.flags.c_contiguous:
            raise PlumeError(f"{path}: a Fortran-ordered array; write it again with `plume prepare`")
        self.path, self.count, self.row_shape, self.dtype = Path(path), len(array), array.shape[1:], array.dtype
        self.offset = array.offset  # bytes before row 0 (the .npy header)
        self.row_bytes = int(np.prod(self.row_shape)) * array.dtype.itemsize
        self._file: Optional[int] = None

    def __len__(self) -> int:
        return self.count

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The rows (b,) as one array (b, ...)."""
        if self._file is None:
            self._file = os.open(self.path, os.O_RDONLY)  # per process: workers open their own
        out = np.empty((len(rows), *self.row_shape), dtype=self.dtype)  # (b, ...)
        flat = out.reshape(len(rows), -1)
        for i, row in enumerate(np.asarray(rows, dtype=np.int64)):
            flat[i] = np.frombuffer(os.pread(self._file, self.row_bytes, self.offset + int(row) * self.row_bytes),
                                    dtype=self.dtype)
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None}


class StreamedRows:
    """The reading part of a streamed data set: rows of `reader` by training index (through `source_rows`, e.g. a
    held-out split's mapping), from the Prefetcher while stream() is open, else read at once."""

    reader: RowReader
    workers: int = 0
    _prefetcher: Optional[Prefetcher] = None

    def source_rows(self, index: np.ndarray) -> np.ndarray:
        """The reader's rows (b,) of training indices `index` (b,); the identity unless overridden."""
        return index

    def rows(self, index: torch.Tensor) -> np.ndarray:
        """What the reader holds at the training indices `index` (b,)."""
        rows = self.source_rows(np.asarray(index.cpu(), dtype=np.int64))  # (b,)
        got = self._prefetcher.take(rows) if self._prefetcher is not None else None
        return self.reader.read(rows) if got is None else got

    @contextlib.contextmanager
    def stream(self, plan: Iterable[torch.Tensor]) -> Iterator[Prefetcher]:
        """Prefetch the training indices in `plan` in self.workers processes while the context is open."""
        source = (self.source_rows(np.asarray(index, dtype=np.int64)) for index in plan)
        self._prefetcher = Prefetcher(self.reader, source, self.workers)
        try:
            yield self._prefetcher
        finally:
            self._prefetcher.close()
            self._prefetcher = None

    def __getstate__(self) -> dict[str, Any]:
        """A worker gets the reader, never the live prefetcher (spawn / forkserver start methods pickle the data)."""
        return {k: v for k, v in self.__dict__.items() if k != "_prefetcher"}


__all__ = ["NpyRows", "Prefetcher", "RowReader", "StreamedData", "StreamedRows"]
