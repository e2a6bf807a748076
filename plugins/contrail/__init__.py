"""contrail: an orchestrated batch and micro-batch ML pipeline.

The package is the project's one Airflow plugin package: DAG files in ``dags/``
import their operators, rules and transforms from here and only wire them.
"""

__version__ = "0.1.0"
