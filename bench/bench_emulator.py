"""The AWS emulator's memory under a lake's worth of writes: the stack's emulator component (its
command line and its malloc settings) against the same process on glibc's defaults, one after
the other in one run.

Six writers PUT objects of 15-900 KB into a versioned bucket (reading back every fifth, listing
their zone every fiftieth), then the emulator's paced snapshot stores them in content files and
the keys let go of their bytes. Prints per variant the PUT wall time, the peak PSS while writing,
the PSS once snapshotted and the emulator's CPU seconds.

    .venv/bin/python bench/bench_emulator.py [--objects 600] [--writers 6]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import boto3
import psutil
from botocore.config import Config

SIZES = (15_000, 60_000, 130_000, 400_000, 900_000)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(variant: str, *, objects: int, writers: int, settle_s: float) -> dict[str, float]:
    from contrail.settings import load_settings
    from contrail.stack import local

    state = Path(tempfile.mkdtemp(prefix="contrail-bench-emulator-"))
    port = _free_port()
    settings = load_settings({"CONTRAIL_STATE_DIR": str(state), "CONTRAIL_EMULATOR_PORT": str(port)})
    (component,) = [c for c in local.components(settings) if c.name == "emulator"]
    env = {k: v for k, v in os.environ.items() if k not in local.EMULATOR_MALLOC}
    if variant == "stack":
        env.update(component.env)
    local.paths(settings)["emulator_state"].parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(component.argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not component.ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.2)
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench",
                          config=Config(max_pool_connections=writers * 2))
        s3.create_bucket(Bucket="lake")
        s3.put_bucket_versioning(Bucket="lake", VersioningConfiguration={"Status": "Enabled"})
        emulator = psutil.Process(proc.pid)

        def write(writer: int) -> None:
            rnd = random.Random(writer)
            for i in range(objects):
                key = f"zone{writer}/dt=2013-{i % 12 + 1:02d}-{i % 28 + 1:02d}/part-{i:05d}.parquet"
                s3.put_object(Bucket="lake", Key=key, Body=rnd.randbytes(rnd.choice(SIZES)))
                if i % 5 == 0:
                    s3.get_object(Bucket="lake", Key=key)["Body"].read()
                if i % 50 == 0:
                    s3.list_objects_v2(Bucket="lake", Prefix=f"zone{writer}/")

        started = time.monotonic()
        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        peak = 0.0
        while any(t.is_alive() for t in threads):
            peak = max(peak, emulator.memory_full_info().pss / 2**20)
            time.sleep(0.5)
        wall = time.monotonic() - started
        time.sleep(settle_s)  # the paced snapshot stores what was written
        return {"put_s": wall, "peak_mib": peak, "settled_mib": emulator.memory_full_info().pss / 2**20,
                "cpu_s": sum(emulator.cpu_times()[:2])}
    finally:
        proc.terminate()
        proc.wait(timeout=120)
        shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=600, help="PUTs per writer")
    parser.add_argument("--writers", type=int, default=6)
    parser.add_argument("--settle", type=float, default=40.0, help="seconds to wait for the snapshot")
    args = parser.parse_args()
    mean_kb = sum(SIZES) / len(SIZES) / 1000
    print(f"{args.writers} writers x {args.objects} PUTs of 15-900 KB (about {args.writers * args.objects * mean_kb / 1000:.0f} MB)")
    for variant in ("glibc defaults", "stack"):
        r = measure(variant, objects=args.objects, writers=args.writers, settle_s=args.settle)
        print(f"{variant:>15}: PUTs {r['put_s']:.0f} s; peak {r['peak_mib']:.0f} MiB PSS while writing; "
              f"{r['settled_mib']:.0f} MiB once snapshotted; CPU {r['cpu_s']:.0f} s")


if __name__ == "__main__":
    main()
