"""Fault injection for the lake's commit protocols: run a stage's commit with an S3 client that
raises at its N-th write, for every N, then re-run it cleanly, and check the two promises of the
catalog — nothing partial was ever visible, and the lake converges to the undisturbed run's state.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Callable

import pytest


class InjectedFault(RuntimeError):
    """The crash a test asked for (a killed task, a lost connection) at one write."""


class FaultyS3:
    """Passes every call to a real client; the ``fail_at``-th write raises instead of writing."""

    WRITES = frozenset({"put_object", "copy_object", "delete_object", "delete_objects", "upload_file",
                        "upload_fileobj", "copy"})

    def __init__(self, inner: Any, fail_at: int | None = None):
        self.inner, self.fail_at = inner, fail_at
        self.writes = 0
        self._lock = threading.Lock()  # stages write from thread pools

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.WRITES:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.writes += 1
                number = self.writes
            if number == self.fail_at:
                raise InjectedFault(f"injected crash at write {number} ({name})")
            return attr(*args, **kwargs)

        return write


def snapshot(s3: Any, bucket: str) -> dict[str, str]:
    """Every object of the bucket as key -> sha256 of its bytes."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"]] = hashlib.sha256(body).hexdigest()
    return out


Fresh = Callable[[], tuple[Any, str]]
Step = Callable[[Any, str], Any]
View = Callable[[Any, str], dict[str, Any]]


def crash_at_every_write(fresh: Fresh, step: Step, view: View, *, expect_error: type | None = None) -> int:
    """Crash ``step`` at each of its writes in turn and prove it safe; returns how many writes it has.

    ``fresh()`` gives a newly set-up lake (client, bucket) the step has not touched; ``view`` is what
    readers see, per partition. After each crash every partition shows its state from before the
    step or from after it — never a mix — and a clean re-run leaves exactly the bytes an undisturbed
    run leaves. ``expect_error`` is an error the undisturbed step itself raises after committing
    (a failed gate).
    """
    def run(client: Any, bucket: str) -> None:
        if expect_error is None:
            step(client, bucket)
        else:
            with pytest.raises(expect_error):
                step(client, bucket)

    s3, bucket = fresh()
    before = view(s3, bucket)
    counting = FaultyS3(s3)
    run(counting, bucket)
    reference, after = snapshot(s3, bucket), view(s3, bucket)
    assert counting.writes > 0 and after != before, "the step under test must commit something"
    for fail_at in range(1, counting.writes + 1):
        s3, bucket = fresh()
        with pytest.raises(InjectedFault):
            step(FaultyS3(s3, fail_at), bucket)
        seen = view(s3, bucket)
        for partition in set(before) | set(after) | set(seen):
            assert seen.get(partition) in (before.get(partition), after.get(partition)), (
                f"crash at write {fail_at}: {partition} shows a partial commit: {seen.get(partition)!r}")
        run(s3, bucket)
        assert view(s3, bucket) == after, f"crash at write {fail_at}: the re-run did not converge"
        assert snapshot(s3, bucket) == reference, f"crash at write {fail_at}: the lake differs from an undisturbed run"
    return counting.writes
