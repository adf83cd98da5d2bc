"""The prediction log's local spool: an append-only, group-committed journal of answered predictions.

A spool is a folder (a *slot*) owned by one process at a time (an exclusive `flock` on `<slot>/lock`, released by
the kernel when the process dies, even by kill -9). It holds numbered segment files, `<seq>.spool`; records are only
ever appended to the newest one, by one writer thread, which takes every record waiting, writes them with one
`write` and makes them durable with one `fdatasync` (group commit: one disk flush for all the requests in flight),
then releases their callers. A segment is never appended to again once a newer one exists, and segment numbers
only grow (the newest segment is never deleted), so `<slot id, seq>` names a set of records for good: what the
lakehouse side (serving.prediction_log) records as committed, per table, to replay exactly once.

Segment: an 8-byte header, then frames `<u32 length><u32 crc32><payload>` (little endian). A crash can leave only
the last frame of a segment torn (the writer never appends after a failed write: it starts a new segment); reading
stops at the first frame that is short, empty or fails its checksum, and says how many bytes it ignored. Those
bytes were never acknowledged: the requests they belong to got no answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("serving.spool")

HEADER = b"FSPOOL1\n"
FRAME = struct.Struct("<II")  # payload length, crc32 of the payload
SUFFIX = ".spool"
SLOT_PREFIX = "worker-"


class SpoolError(RuntimeError):
    """A record could not be made durable (disk full, I/O error, spool closed): its request must not be answered."""


def encode_frame(payload: bytes) -> bytes:
    """Pure: one framed record."""
    if not payload:
        raise ValueError("a spool record cannot be empty")
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def decode_frames(data: bytes) -> tuple[list[bytes], int]:
    """Pure: the records of a segment's bytes, and how many bytes at the end were ignored (a torn last frame, or
    anything after a frame that fails its checksum). A segment without its full header has no records."""
    if not data.startswith(HEADER):
        return [], len(data)
    records: list[bytes] = []
    at = len(HEADER)
    while at + FRAME.size <= len(data):
        length, crc = FRAME.unpack_from(data, at)
        start, end = at + FRAME.size, at + FRAME.size + length
        if length == 0 or end > len(data):
            break
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            break
        records.append(payload)
        at = end
    return records, len(data) - at


def segment_name(seq: int) -> str:
    return f"{seq:016d}{SUFFIX}"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolSlot:
    """One slot folder, held (flock) by this process until `release`."""

    def __init__(self, folder: Path, lock_fd: int) -> None:
        self.folder = folder
        self._lock_fd = lock_fd
        id_file = folder / "spool-id"
        if not id_file.exists():  # written once, atomically: the id must never change while segments exist
            tmp = folder / "spool-id.tmp"
            tmp.write_text(uuid.uuid4().hex, encoding="ascii")
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
            tmp.replace(id_file)
            _fsync_dir(folder)
        self.id = id_file.read_text(encoding="ascii").strip()

    @classmethod
    def try_claim(cls, folder: Path) -> SpoolSlot | None:
        """The slot at `folder` (created if missing) if no other process holds it, else None."""
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return cls(folder, fd)

    @classmethod
    def claim_free(cls, root: Path) -> SpoolSlot:
        """The first slot under `root` (`worker-0`, `worker-1`, ...) that no live process holds: one per worker."""
        root.mkdir(parents=True, exist_ok=True)
        k = 0
        while True:
            slot = cls.try_claim(root / f"{SLOT_PREFIX}{k}")
            if slot is not None:
                return slot
            k += 1

    def segments(self) -> list[int]:
        """The sequence numbers of the segments on disk, oldest first."""
        seqs = []
        for path in self.folder.glob(f"*{SUFFIX}"):
            try:
                seqs.append(int(path.name.removesuffix(SUFFIX)))
            except ValueError:
                continue
        return sorted(seqs)

    def path(self, seq: int) -> Path:
        return self.folder / segment_name(seq)

    def create_segment(self, seq: int) -> int:
        """A new, empty segment (header written and durable, directory entry too); its open append descriptor."""
        fd = os.open(self.path(seq), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            _write_all(fd, HEADER)
            os.fdatasync(fd)
            _fsync_dir(self.folder)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read(self, seq: int) -> tuple[list[bytes], int]:
        """The records of segment `seq` (and the bytes ignored at its end)."""
        return decode_frames(self.path(seq).read_bytes())

    def delete(self, seqs: list[int]) -> None:
        for seq in seqs:
            self.path(seq).unlink(missing_ok=True)

    def release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = -1


def other_slots(root: Path, mine: SpoolSlot) -> Iterator[SpoolSlot]:
    """Slots under `root` that no live process holds (left by a worker that is gone), each claimed in turn: the
    caller replays it, then releases it."""
    if not root.is_dir():
        return
    for folder in sorted(root.glob(f"{SLOT_PREFIX}*")):
        if folder == mine.folder or not folder.is_dir():
            continue
        slot = SpoolSlot.try_claim(folder)
        if slot is not None:
            yield slot


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


Pending = tuple[bytes, Any, "asyncio.Future[None]"]


class GroupCommitWriter:
    """Appends records to the newest segment of a slot from one thread, many records per `fdatasync`.

    `append` (event loop) returns a future that completes once the record is durable, or fails with SpoolError.
    `on_durable(items, seq)` is called by the writer with the items of each durable group and their segment's number,
    under `lock`, which `rotate` takes too: whoever holds it sees the segments and the items in a consistent state."""

    def __init__(self, slot: SpoolSlot, first_seq: int, on_durable: Callable[[list[Any], int], None]) -> None:
        self.slot = slot
        self.on_durable = on_durable
        self.lock = threading.Lock()  # held while writing a group and while rotating
        self.seq = first_seq
        self._fd = slot.create_segment(first_seq)
        self._records_in_segment = 0
        self._torn = False  # a write failed: the current segment may end in a torn frame, never append to it again
        self._pending: list[Pending] = []
        self._cond = threading.Condition()
        self._closing = False
        self.groups = 0  # fdatasync calls (what the tests count)
        self.records = 0  # records made durable
        self._thread = threading.Thread(target=self._run, name="prediction-spool", daemon=True)
        self._thread.start()

    def append(self, frame: bytes, item: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._cond:
            if self._closing:
                raise SpoolError("the prediction spool is closed (the API is shutting down)")
            self._pending.append((frame, item, future))
            self._cond.notify()
        return future

    def rotate(self) -> None:
        """Start a new segment if the current one has records: every segment below `seq` is then sealed. The
        caller holds `lock`."""
        if self._records_in_segment > 0:
            self._start_segment(self.seq + 1)

    def _start_segment(self, seq: int) -> None:
        fd = self.slot.create_segment(seq)  # first: if it fails, the old segment stays current
        os.close(self._fd)
        self._fd, self.seq, self._records_in_segment = fd, seq, 0

    def stop(self, timeout: float = 60.0) -> None:
        """Write what is waiting, then stop the thread (appends after this fail; `rotate` still works)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    def close_file(self) -> None:
        with self.lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                group, self._pending = self._pending, []
            error = self._write_group(group)
            _settle([future for _, _, future in group], error)

    def _write_group(self, group: list[Pending]) -> SpoolError | None:
        with self.lock:
            try:
                if self._torn:
                    self._start_segment(self.seq + 1)
                    self._torn = False
                _write_all(self._fd, b"".join(frame for frame, _, _ in group))
                os.fdatasync(self._fd)
            except OSError as exc:
                # what reached the file may be torn: never append after it (a reader stops at the first bad frame)
                self._torn = True
                log.error("cannot write %d prediction(s) to the spool %s: %s", len(group), self.slot.folder, exc)
                return SpoolError(f"{type(exc).__name__}: {exc.strerror or exc}")
            self.groups += 1
            self.records += len(group)
            self._records_in_segment += len(group)
            self.on_durable([item for _, item, _ in group], self.seq)
        return None


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    """Complete the futures from the writer thread: one call into each event loop for the whole group."""
    by_loop: dict[int, tuple[asyncio.AbstractEventLoop, list[asyncio.Future[None]]]] = {}
    for future in futures:
        loop = future.get_loop()
        by_loop.setdefault(id(loop), (loop, []))[1].append(future)
    for loop, group in by_loop.values():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_complete, group, error)


def _complete(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():  # the request was cancelled (client gone)
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
