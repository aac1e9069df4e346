"""target-segmetrics: a Singer target that loads any tap's records into SegMetrics."""
