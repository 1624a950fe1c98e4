"""Connect the driver process to a Ray cluster: join the configured one or start a fresh one.

A bare ``ray.init()`` (``address=None``) also looks for a cluster recorded in
``/tmp/ray/ray_current_cluster``; a stale record there (a head that died without cleaning up) made
collection hang. :func:`init_ray` therefore only joins a cluster it is told about and otherwise
starts a local one with ``address="local"``, which never reads that file.
"""

from __future__ import annotations

import os


def init_ray(address: str | None) -> None:
    """Join the cluster at ``address`` or ``$RAY_ADDRESS``, else start a fresh local one.

    Does nothing when Ray is already initialised in this process. A submitted Ray job has
    ``RAY_ADDRESS`` set, so it joins the cluster it was submitted to. Run directly, a new local
    cluster starts even if another one runs on this machine (pass ``address="auto"``, or
    ``--address auto`` on the command line, to join that one instead).

    Args:
        address: a Ray address (``auto``, ``host:port``, ``ray://host:port``) or None.
    """
    import ray

    if ray.is_initialized():
        return
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address or None)
    else:
        ray.init(address="local", include_dashboard=False)
