"""Bugs the reliability suite found that are not fixed yet, each with the test that shows it.

Tests for these are marked ``xfail(strict=True)``: when a fix lands they pass, the strict mark
turns that into a failure, and the entry here is deleted. ``docs/reliability.md`` lists them too.
"""

from __future__ import annotations

import pytest

# bad-input cases whose documented answer es_core does not give yet
CORPUS: dict[str, str] = {
}


def known(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(reason=reason, strict=True)
