"""Dask is an optional extra: neither the core nor the domain imports it, and the Dask engine's
package imports it only when a cluster is used."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import es_core, downloads, downloads.cli, downloads.scaleout
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"dask", "distributed", "bokeh"})
print(",".join(loaded))
"""


def test_importing_the_core_the_domain_and_the_engine_loads_no_dask() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
