"""Named, reproducible experiments: the article's demos, method comparison, examples."""
