"""The micro-batch path: Firehose objects in, scored flights out, each event exactly once.

Consumes the newline-delimited JSON objects Firehose delivers under
``stream/flights/YYYY/MM/DD/HH/`` (one schedule event per line, see
:mod:`contrail.simulate`), named by S3 notifications on the stream queue or found by the
sweep. Produces, per object:

* ``predictions/<model>/stream/dt=<event day>/<object-sha>.parquet`` — one row per valid,
  first-seen event: ``event_id``, ``flight_id``, ``dt``, ``event_time``, ``processed_time``,
  ``probability``, ``label``, ``model_name``, ``model_version``, ``run_id``, ``features_dt``
  (the batch partition the look-ups came from) and ``object_key``;
* ``deadletter/stream/invalid/flights/<object-sha>.json`` — every rejected line with its
  reason (malformed JSON, missing field, wrong type, inconsistent schedule, duplicate
  ``event_id``); the rest of the object goes on;
* the **ledger** under ``ledger/stream/flights/`` (``stream/`` itself is read-only to us):

  - ``events/<sha(event_id)>.json`` — a claim, created with an S3 conditional write: the
    first object to claim an event owns it; a later object carrying the same event (a
    Firehose retry, a producer re-send) dead-letters it as a duplicate. Re-claiming from the
    same object writes identical bytes, so a re-run keeps its own claims;
  - ``days/dt=<event day>/<object key>`` — empty markers naming the objects holding a day's
    events (the index :func:`compact_day` lists; no GETs needed);
  - ``objects/<sha(object key)>.json`` — written **last**, with ``lake.put_immutable``.
    Its presence means "done": a duplicate notification, a re-run or the sweep skips the
    object. Everything before it has deterministic keys, so a task killed half-way
    re-processes the object and overwrites the same keys: each event is scored exactly once.

Features. Schedule features come from the batch code itself,
:func:`contrail_spark.transforms.schedule_features`, run once per task (not per object) on the
stack's Spark Connect server (``settings.spark_remote``; without one, a local SparkSession of
the task): there is one definition of ``flight_id``, ``sched_dep_weekday`` and the rest.
Weather and trailing on-time rates cannot be computed from one event; they are looked up in
the **latest published batch partition on or before the event's day** (``features/<set>/``
with ``_SUCCESS``): trailing ``carrier_*``, ``origin_*`` and ``route_*`` columns per key, and
origin weather per ``origin`` + ``time_hour``. On or before, not simply the latest, so a
replay of a past day never sees the future. When that partition is the event's own day the
values are exactly the batch values; when it is older the trailing rates are stale by the
gap (``features_dt`` says by how much) and weather is left null rather than guessed — the
model handles missing values natively. Keys absent from the partition also stay null.

Compaction (:func:`compact_day`) merges a day's events (by event day, through the
``days/`` index) into ``warm/stream/flights/dt=…/part-00000.parquet``: same inputs, same
bytes; the Firehose originals are never touched.

On the hot path these look-ups come from the online feature store
(:mod:`contrail.online_store`: DynamoDB, one BatchGetItem per micro-batch), which holds exactly
what the partitions give; :class:`.lookups.BatchFeatures` reads the partitions themselves and is
the reference the store is tested against.

Sources: Firehose objects (above), or a Kinesis Data Stream (:mod:`.kinesis`: per shard, a batch
object per first sequence number, then the same ``process_keys``, then the checkpoint);
``settings.stream_source`` picks one.

Modules: :mod:`.events` (the record contract, pure), :mod:`.lookups` (features),
:mod:`.ledger` (exactly-once processing), :mod:`.kinesis` (the Kinesis source),
:mod:`.compaction` (the warm tier); the Airflow edge is :mod:`contrail.stages.stream`.
"""
