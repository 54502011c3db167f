"""Helpers shared by the benchmark scripts that compare two arms over seeds."""

from __future__ import annotations

import statistics


def arm_summary(values: list[float]) -> dict:
    """The values of one arm, their mean and (with two or more) their sample standard deviation."""
    return {"values": values, "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None}
