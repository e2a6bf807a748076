"""The AWS API emulator of the local stack: moto's server, made durable.

moto keeps its state in memory only. This process serves moto's WSGI app on loopback and
snapshots the backends of the services contrail uses (S3, SQS, Firehose, EMR, EMR
Serverless, IAM, STS, and the hot tier's DynamoDB and Kinesis) to one pickle file: after
every burst of mutating requests (debounced) and on SIGTERM/SIGINT. On start the snapshot is
restored, so ``make down`` / ``make up`` keeps the lake, the queues and the clusters.

The pickle holds each S3 object's metadata and the name of its content; the bytes are written
once, to a file named by their SHA-256 beside it (:class:`ObjectFiles`). A snapshot therefore
costs the objects written since the last one, not the whole lake: pickling a year's lake inline
after every burst held two more copies of it in memory (the pickle's own, and its memo of every
object's bytes) and was the stack's second use of CPU. Once its content file is written, a key
reads its bytes from that file (:class:`StoredContent`): the emulator's memory holds the objects
written since the last snapshot, not the lake (a year's lake held in moto's buffers was 1.3 GB).

The snapshot is the emulator's own state file under ``.contrail/``; it is never shipped or
loaded from anywhere else (it is a pickle, so it must stay a private local file).
"""

from __future__ import annotations

import argparse
import copyreg
import functools
import hashlib
import io
import logging
import os
import pickle
import signal
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterable

log = logging.getLogger("contrail.emulator")

SERVICES: tuple[str, ...] = ("s3", "sqs", "firehose", "emr", "emr-serverless", "iam", "sts", "logs",
                             "dynamodb", "kinesis")
MUTATING = frozenset({"PUT", "POST", "DELETE", "PATCH"})
# the pause before a snapshot is at least this many times the last one's duration
SNAPSHOT_PACE = 9.0


def _reduce_lock(lock: Any) -> tuple[Callable[[], Any], tuple[()]]:
    return type(lock), ()


def _register_lock_pickling() -> None:
    """Locks inside moto's models pickle as fresh, unlocked locks."""
    copyreg.pickle(type(threading.RLock()), _reduce_lock)  # type: ignore[arg-type]
    copyreg.pickle(type(threading.Lock()), _reduce_lock)  # type: ignore[arg-type]


def snapshot_state(services: Iterable[str] = SERVICES) -> dict[str, dict[str, dict[str, Any]]]:
    from moto.backends import get_backend

    state: dict[str, dict[str, dict[str, Any]]] = {}
    for name in services:
        backend_dict = get_backend(name)  # type: ignore[call-overload]
        state[name] = {account: dict(regions) for account, regions in backend_dict.items()}
    return state


def restore_state(state: dict[str, dict[str, dict[str, Any]]]) -> int:
    """Put snapshotted backends back; returns how many region backends were restored."""
    from moto.backends import get_backend

    restored = 0
    for name, accounts in state.items():
        backend_dict = get_backend(name)  # type: ignore[call-overload]
        for account, regions in accounts.items():
            for region, backend in regions.items():
                backend_dict[account][region] = backend
                restored += 1
    return restored


class StoredContent:
    """A key's bytes in their content file, as the buffer moto reads a key through (``seek``,
    ``read``): read from disk when asked, never held in memory. A new value (moto's setter
    truncates, then writes) is held in memory again until the next snapshot stores it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._position = 0
        self._memory: io.BytesIO | None = None

    @property
    def stored(self) -> bool:
        return self._memory is None

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self._memory is not None:
            return self._memory.seek(offset, whence)
        if whence == io.SEEK_END:
            offset += self.path.stat().st_size
        elif whence == io.SEEK_CUR:
            offset += self._position
        self._position = offset
        return offset

    def tell(self) -> int:
        return self._memory.tell() if self._memory is not None else self._position

    def read(self, size: int = -1) -> bytes:
        if self._memory is not None:
            return self._memory.read(size)
        with self.path.open("rb") as fh:
            fh.seek(self._position)
            data = fh.read(size)
        self._position += len(data)
        return data

    def truncate(self, size: int | None = None) -> int:
        if self._memory is None:
            self.seek(0)
            self._memory = io.BytesIO(self.read(size if size is not None else -1))
        return self._memory.truncate(size)

    def write(self, data: bytes) -> int:
        if self._memory is None:
            self.truncate(self._position)
            self._memory.seek(self._position)  # type: ignore[union-attr]
        return self._memory.write(data)  # type: ignore[union-attr]

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()


class ObjectFiles:
    """The S3 objects' bytes of the snapshots: one file per content, named by its SHA-256.

    An S3 object is immutable: a PUT makes a new key (a new version), so a key's content is
    hashed and written once, the first snapshot after its PUT; from then on the key reads it
    from that file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def name_of(self, key: Any) -> str:
        """The file holding ``key``'s bytes, written if no snapshot holds them yet; the key then
        reads its bytes from the file and lets go of its in-memory buffer."""
        buffer = key._value_buffer
        if isinstance(buffer, StoredContent) and buffer.stored:
            return buffer.path.name
        with key.lock:  # moto's value getter holds it: no read sees the buffers swapped
            buffer.seek(0)
            value = buffer.read()
            name = hashlib.sha256(value).hexdigest()
            path = self.directory / name
            if not path.exists():
                self.directory.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
                tmp.write_bytes(value)
                os.replace(tmp, path)
            key._value_buffer = StoredContent(path)
        buffer.close()
        return name

    def open(self, name: str) -> StoredContent:
        return StoredContent(self.directory / name)

    def keep_only(self, names: set[str]) -> int:
        """Delete the files no snapshot names any more; returns how many."""
        gone = 0
        for path in self.directory.glob("*") if self.directory.exists() else ():
            if path.name not in names:
                path.unlink(missing_ok=True)
                gone += 1
        return gone


def _key_state(key: Any) -> dict[str, Any]:
    """A moto ``FakeKey``'s pickled state (as its ``__getstate__``) without its bytes."""
    state = key.__dict__.copy()
    del state["_value_buffer"]
    del state["lock"]
    return state


def _restored_key(objects: ObjectFiles, name: str, state: dict[str, Any]) -> Any:
    """A key as moto's ``__setstate__`` makes it, its bytes left in their content file."""
    from moto.s3.models import FakeKey

    key = FakeKey.__new__(FakeKey)
    key.__dict__.update(state)
    key._value_buffer = objects.open(name)
    key.lock = threading.Lock()
    return key


def _restored_versions(cls: type, versions: dict[str, list[Any]]) -> Any:
    store = cls()
    for name, keys in versions.items():
        dict.__setitem__(store, name, keys)
    return store


def _reduce_versions(store: Any) -> tuple[Callable[..., Any], tuple[type, dict[str, list[Any]]]]:
    """A bucket's keys with every version: pickled as the dict it is, moto's key store gives
    only each key's latest version (its ``items()``), and a restart lost the older ones."""
    return _restored_versions, (type(store), {name: list(keys) for name, keys in dict.items(store)})


class SnapshotPickler(pickle.Pickler):
    """Pickles the backends with each S3 key's bytes as the name of its file in ``objects``,
    and each bucket's keys with all their versions."""

    def __init__(self, fh: IO[bytes], objects: ObjectFiles) -> None:
        from moto.s3.models import FakeKey
        from moto.s3.utils import _VersionedKeyStore

        super().__init__(fh, protocol=pickle.HIGHEST_PROTOCOL)
        self.objects = objects
        self.named: set[str] = set()
        self.dispatch_table = {**copyreg.dispatch_table, FakeKey: self._reduce_key,
                               _VersionedKeyStore: _reduce_versions}

    def _reduce_key(self, key: Any) -> tuple[Callable[..., Any], tuple[str, dict[str, Any]]]:
        name = self.objects.name_of(key)
        self.named.add(name)
        return _restored_key, (name, _key_state(key))


class SnapshotUnpickler(pickle.Unpickler):
    """Reads a snapshot, each S3 key's bytes from its file in ``objects`` (older snapshots,
    with the bytes inline, read as they are)."""

    def __init__(self, fh: IO[bytes], objects: ObjectFiles) -> None:
        super().__init__(fh)
        self.objects = objects

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == (__name__, _restored_key.__name__):
            return functools.partial(_restored_key, self.objects)
        return super().find_class(module, name)


class DurableState:
    """Debounced snapshots of the emulator's backends to ``path`` (atomic rename), the S3
    objects' bytes in the directory beside it."""

    def __init__(self, path: Path, *, debounce_s: float = 2.0) -> None:
        self.path = path
        self.objects = ObjectFiles(path.with_suffix(".objects"))
        self.debounce_s = debounce_s
        self._dirty = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def load(self) -> int:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as fh:
            return restore_state(SnapshotUnpickler(fh, self.objects).load())

    def save(self, attempts: int = 5) -> None:
        """Write a snapshot. Requests keep being served meanwhile, so a walk over a backend
        can meet a dict a request is changing ("changed size during iteration"): walk again."""
        with self._lock:
            self._dirty.clear()
            tmp = self.path.with_suffix(".tmp")
            for attempt in range(1, attempts + 1):
                try:
                    with tmp.open("wb") as fh:
                        pickler = SnapshotPickler(fh, self.objects)
                        pickler.dump(snapshot_state())
                    break
                except RuntimeError:
                    if attempt == attempts:
                        tmp.unlink(missing_ok=True)
                        self._dirty.set()  # not saved: the next round tries again
                        raise
                    time.sleep(0.05 * attempt)
            os.replace(tmp, self.path)
            self.objects.keep_only(pickler.named)

    def mark_dirty(self) -> None:
        self._dirty.set()

    def run(self) -> None:
        last_s = 0.0
        while not self._stop.is_set():
            if self._dirty.wait(timeout=0.5):
                # let a burst of writes finish first; a snapshot walks every key, so a large lake
                # is snapshotted less often: at most a tenth of the time goes to snapshots
                time.sleep(max(self.debounce_s, SNAPSHOT_PACE * last_s))
                started = time.monotonic()
                try:
                    self.save()
                except Exception:  # keep serving; the next save retries
                    log.exception("emulator snapshot failed")
                last_s = time.monotonic() - started

    def stop(self) -> None:
        self._stop.set()


def durable_app(app: Callable[..., Any], state: DurableState) -> Callable[..., Any]:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD") in MUTATING:
            state.mark_dirty()
        return app(environ, start_response)

    return wrapped


def fast_timestamps() -> None:
    """Serialise listed keys' ``LastModified`` without dateutil.

    moto parses each key's own ISO 8601 string back into a datetime before writing it out,
    through botocore's dateutil-based parser: about 40% of a LIST's time in the emulator (a
    year's Lake view lists 5,000 keys). ISO strings go through ``datetime.fromisoformat``;
    anything else still takes botocore's way."""
    from datetime import datetime, timezone

    from moto.core import serialize

    slow = serialize.parse_to_aware_datetime
    if getattr(slow, "fast_iso", False):
        return

    def parse(value: Any) -> datetime:
        if isinstance(value, str) and value[4:5] == "-":  # not an epoch given as a string
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                return slow(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
        return slow(value)

    parse.fast_iso = True  # type: ignore[attr-defined]
    serialize.parse_to_aware_datetime = parse


def serve(host: str, port: int, state_file: Path) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    _register_lock_pickling()
    fast_timestamps()
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state = DurableState(state_file)
    restored = state.load()
    log.info("restored %d region backends from %s", restored, state_file)

    app = durable_app(DomainDispatcherApplication(create_backend_app), state)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    saver = threading.Thread(target=state.run, name="snapshot", daemon=True)
    saver.start()

    def shutdown(signum: int, _frame: Any) -> None:
        log.info("signal %d: saving state and stopping", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info("AWS emulator listening on http://%s:%d", host, port)
    try:
        server.serve_forever()
    finally:
        state.stop()
        state.save()
        log.info("state saved to %s", state_file)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="contrail's durable AWS emulator (moto server)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--state-file", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    serve(args.host, args.port, args.state_file)


if __name__ == "__main__":
    main()
