"""Scale out on Dask: what-if replays, projection rebuilds and simulations spread over the
processes of a ``dask.distributed`` cluster, each giving what one process gives.

Every rule of the domain is per member, and a member is one stream, so the work splits by
stream: ``EventStore.split`` cuts a store into splits that each hold whole streams, a task
per split runs on a worker, and the parts merge into the single-process answer::

    from downloads import scaleout
    with scaleout.connect(workers=2) as client:          # or connect(scheduler="tcp://host:8786")
        print(client.dashboard_link)
        report = scaleout.whatif(store, rules, client=client)
        models = scaleout.rebuild(store, client=client)  # the read models, as ReadModels.rebuild()
        scaleout.simulate(other_store, client=client, members=10_000, days=365, seed=7)

Needs the ``dask`` extra (``pip install 'es-workbench[dask]'``); ``import downloads`` does
not import Dask, and neither does this package until ``connect`` or a task runner is called.
"""

from .cluster import connect, default_splits, run_tasks
from .projections import rebuild
from .simulation import simulate
from .whatif import whatif

__all__ = ["connect", "default_splits", "rebuild", "run_tasks", "simulate", "whatif"]
