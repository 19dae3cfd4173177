"""Named, reproducible experiments: the report (`collapselab demo`), method comparison,
calibration corpus, charged particles."""
