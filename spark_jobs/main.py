"""The file spark-submit runs; the job itself ships in the ``contrail_spark`` artifact (``--py-files``)."""

import sys

from contrail_spark.build_features import main

if __name__ == "__main__":
    main(sys.argv[1:])
