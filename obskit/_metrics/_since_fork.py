"""What a forked child pushes over OTLP: what it added since the fork, never the values it inherited.

In single-process mode a forked child starts with a copy of its parent's prometheus-client values, and its
pusher sent them under the child's own ``service.instance.id``: a backend summing over instances counted the
parent's pre-fork increments once more per child (50 increments, 10 pool workers: 550).

Two fixes were possible: zero the inherited values in the child, or push the child's values minus a
snapshot taken at the fork. Zeroing would change what the child's own code and its ``/metrics`` see (a
counter it reads, a gauge set at start-up), values that are right for that process; only the push double
counts. So the push subtracts: counters and histograms go out cumulative since the fork, starting at the
fork, which is what a new instance's series should be. Gauges are current values, not sums, and go out as
they are. Multiprocess mode needs none of this: prometheus-client starts a forked child's files at zero.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from opentelemetry.sdk.metrics.export import (
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    Sum,
)

__all__ = ["SinceFork"]

_Key = tuple[str, tuple[tuple[str, Any], ...]]


def _key(metric: Metric, point: Any) -> _Key:
    return metric.name, tuple(sorted(point.attributes.items()))


class SinceFork:
    """The values at the fork (``at_fork``, a snapshot the parent took just before it) and the fork's time."""

    def __init__(self, at_fork: MetricsData, fork_ns: int) -> None:
        self._fork_ns = fork_ns
        self._base: dict[_Key, Any] = {
            _key(m, p): p
            for rm in at_fork.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
            if isinstance(m.data, Sum | Histogram) for p in m.data.data_points
        }

    def subtract(self, data: MetricsData) -> MetricsData:
        """``data`` with every counter and histogram series that existed at the fork counted from the fork."""
        return dataclasses.replace(data, resource_metrics=[
            dataclasses.replace(rm, scope_metrics=[
                dataclasses.replace(sm, metrics=[self._metric(m) for m in sm.metrics])
                for sm in rm.scope_metrics])
            for rm in data.resource_metrics])

    def _metric(self, metric: Metric) -> Metric:
        if not isinstance(metric.data, Sum | Histogram):
            return metric
        points = [self._point(self._base.get(_key(metric, p)), p) for p in metric.data.data_points]
        data: Sum | Histogram
        if isinstance(metric.data, Sum):
            data = dataclasses.replace(metric.data, data_points=points)
        else:
            data = dataclasses.replace(metric.data, data_points=points)
        return dataclasses.replace(metric, data=data)

    def _point(self, base: Any, point: Any) -> Any:
        if base is None:
            return point  # a series born after the fork: all of it is this process's
        exemplars = [e for e in point.exemplars if e.time_unix_nano >= self._fork_ns]
        if isinstance(point, NumberDataPoint):
            return dataclasses.replace(point, start_time_unix_nano=self._fork_ns,
                                       value=point.value - base.value, exemplars=exemplars)
        if isinstance(point, HistogramDataPoint) and point.explicit_bounds == base.explicit_bounds:
            return dataclasses.replace(
                point, start_time_unix_nano=self._fork_ns, count=point.count - base.count,
                sum=point.sum - base.sum, exemplars=exemplars,
                bucket_counts=[a - b for a, b in zip(point.bucket_counts, base.bucket_counts, strict=True)])
        return point
