"""Suite-wide settings: hypothesis runs derandomised, so every run explores the same examples."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.load_profile("repeatable")
