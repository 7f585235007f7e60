"""Suite-wide settings: hypothesis runs derandomised, so every run explores the same examples, and
without its per-example deadline, a timing check that fails at random on a busy shared machine."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True, print_blob=True, deadline=None)
settings.load_profile("repeatable")
