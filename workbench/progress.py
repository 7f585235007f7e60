"""Progress bars for long work. The core and the domain report progress through plain
``(done, total)`` callbacks; these adapt such a callback to a ``tqdm.auto`` bar, which draws a
widget in JupyterLab and a text bar in a terminal or a headless run."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tqdm.auto import tqdm

Progress = Callable[[int, int], None]
T = TypeVar("T")


class ProgressBar:
    """A ``(done, total)`` callback that drives one tqdm bar. ``done`` is cumulative; the bar
    follows it, and a changed ``total`` resizes the bar."""

    def __init__(self, desc: str, *, total: int | None = None, unit: str = "it", disable: bool | None = False) -> None:
        self.bar = tqdm(total=total, desc=desc, unit=unit, disable=disable, leave=True)
        self.done = 0
        self.calls = 0

    def __call__(self, done: int, total: int) -> None:
        self.calls += 1
        if total and total != self.bar.total:
            self.bar.total = total
            self.bar.refresh()
        if done > self.done:
            self.bar.update(done - self.done)
            self.done = done

    def close(self) -> None:
        self.bar.close()


@contextmanager
def progress_bar(desc: str, *, total: int | None = None, unit: str = "it") -> Iterator[ProgressBar]:
    """``with progress_bar("simulating") as progress: simulate(..., progress=progress)``."""
    bar = ProgressBar(desc, total=total, unit=unit)
    try:
        yield bar
    finally:
        bar.close()


def track(iterable: Iterable[T], desc: str, *, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Iterate with a progress bar (``tqdm.auto``); for loops written in a cell."""
    return iter(tqdm(iterable, desc=desc, total=total, unit=unit))
