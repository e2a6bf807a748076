"""Each stage's Airflow edge, one module per stage: read the task's context once, pass plain
values (the lake client and bucket, the stage's engine, its params) to a function that can be
run without Airflow, and set the asset event's metadata. DAG files import these lazily inside
their tasks, so parsing a DAG never imports GX, Spark or MLflow.

Data errors raise ``AirflowFailException`` (no retry can fix a bad file); everything else may
raise and be retried.
"""
