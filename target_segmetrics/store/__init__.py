from target_segmetrics.store import tags as _tags  # noqa: F401  TEMPORARY: its table is made with the others
