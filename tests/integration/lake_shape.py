"""The shape of what the lake holds for one day, to compare days that went through the pipeline
the same way (one with a failure drill, one without)."""

from __future__ import annotations

import re
from datetime import date

from contrail import catalog, lake


def partition_shape(settings, s3, day: date) -> dict:
    """What the lake holds for one day, with the day and generated ids blanked: two days that
    went through the pipeline the same way have the same shape."""
    prefixes = [*(catalog.landing_partition(ds, day) for ds in ("flights", "weather")),
                *(catalog.quarantine_prefix(ds, day) for ds in ("flights", "weather")),
                *(catalog.quality_result_key(ds, day, 1).rsplit("/", 1)[0] + "/" for ds in ("flights", "weather")),
                catalog.features_partition(settings.feature_set, day),
                catalog.predictions_partition(settings.model_name, day)]
    keys = sorted(o.key for p in prefixes for o in lake.list_objects(s3, settings.bucket, p))

    def blank(key: str) -> str:
        key = key.replace(day.isoformat(), "<dt>").replace(day.strftime("%Y%m%d"), "<dt>")
        key = re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "<id>", key)
        return re.sub(r"b=(m\d+-)?[0-9a-f]{16}/", "b=<build>/", key)  # builds are named per run

    pointers = [lake.read_json(s3, settings.bucket, catalog.validated_pointer_key(ds, day))["version"]
                for ds in ("flights", "weather")]
    return {"keys": sorted(blank(k) for k in keys), "validated_versions": pointers}
