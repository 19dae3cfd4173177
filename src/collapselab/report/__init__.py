"""Plots and the self-contained HTML/JSON report."""
