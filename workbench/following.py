"""Watching a subscription follow the log: sampled status as a DataFrame, and its chart."""

from __future__ import annotations

import time
from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go

from es_core.subscriptions import SubscriptionAdmin

from .figures import _layout


def watch_subscription(
    admin: SubscriptionAdmin,
    name: str,
    *,
    until: Callable[[], bool],
    every: float = 0.05,
    timeout: float = 300.0,
) -> pd.DataFrame:
    """Sample ``name``'s status every ``every`` seconds until ``until()`` is true and the
    subscription has caught up with the head (or ``timeout`` passes): one row per sample with
    the seconds since the start, its position, the store's head and the lag in events."""
    rows = []
    start = time.monotonic()
    while True:
        status = admin.status([name])[0]
        rows.append({"seconds": round(time.monotonic() - start, 3), "position": status.position,
                     "head": status.head, "lag_events": status.lag_events})
        done = until() and status.lag_events == 0
        if done or time.monotonic() - start > timeout:
            return pd.DataFrame(rows)
        time.sleep(every)


def lag_chart(samples: pd.DataFrame, *, title: str = "A subscription following the log") -> go.Figure:
    """The store's head and the subscription's position over time, and the lag between them."""
    fig = go.Figure()
    fig.add_scatter(x=samples["seconds"], y=samples["head"], name="head (last event written)", mode="lines")
    fig.add_scatter(x=samples["seconds"], y=samples["position"], name="subscription position", mode="lines")
    fig.add_bar(x=samples["seconds"], y=samples["lag_events"], name="lag (events)", yaxis="y2", opacity=0.35)
    fig.update_layout(
        xaxis_title="seconds", yaxis_title="position",
        yaxis2={"title": "lag (events)", "overlaying": "y", "side": "right", "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.2},
    )
    return _layout(fig, title)
