"""contrail Spark jobs: pure transforms, thin entry points, swappable lake I/O."""
