"""Connect the driver process to a Ray cluster: join the configured one or start a fresh one.

The entry layer's job (house rule 1): the commands of :mod:`sea_dist.cli` and the Ray job
entrypoints in ``jobs/`` call :func:`init_ray` before library code that needs Ray (e.g.
:func:`sea_dist.collect.driver.collect`), which never starts or joins a cluster itself.

A bare ``ray.init()`` (``address=None``) also looks for a cluster recorded in
``/tmp/ray/ray_current_cluster``; a stale record there (a head that died without cleaning up) made
collection hang. :func:`init_ray` therefore only joins a cluster it is told about and otherwise
starts a local one with ``address="local"``, which never reads that file.

Joining is bounded: ``ray.init`` retries an unreachable head for minutes without a word. Before
it is called, the head's address is resolved the way Ray resolves it and probed over TCP until a
deadline (30 s, or ``$SEA_DIST_RAY_CONNECT_TIMEOUT_S``); if nothing answers, one
:class:`~sea_dist.errors.ClusterError` line says which address, what happened and what to do.
A port that answers but is not a Ray head is bounded too: ``ray.init`` is interrupted at the
deadline (Ray checks for the interrupt between its own connection attempts, so the refusal can
come up to one attempt, about 30 s, later).
"""

from __future__ import annotations

import _thread
import logging
import os
import socket
import threading
import time

from sea_dist.errors import ClusterError, excerpt

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 30.0
"""How long to wait for a Ray head to answer, unless ``$SEA_DIST_RAY_CONNECT_TIMEOUT_S`` says."""
TIMEOUT_ENV = "SEA_DIST_RAY_CONNECT_TIMEOUT_S"
AUTH_MODE_ENV = "RAY_AUTH_MODE"
RAY_CLIENT_PORT = 10001
_FIX = (
    "start the head ('ray start --head'), fix --address / collect.ray_address / $RAY_ADDRESS, "
    "or leave them unset to start a local cluster"
)


def init_ray(address: str | None, timeout_s: float | None = None) -> None:
    """Join the cluster at ``address`` or ``$RAY_ADDRESS``, else start a fresh local one.

    Does nothing when Ray is already initialised in this process. A submitted Ray job has
    ``RAY_ADDRESS`` set, so it joins the cluster it was submitted to. Run directly, a new local
    cluster starts even if another one runs on this machine (pass ``address="auto"``, or
    ``--address auto`` on the command line, to join that one instead).

    Args:
        address: a Ray address (``auto``, ``host:port``, ``ray://host:port``) or None.
        timeout_s: how long to wait for the cluster to answer (default
            ``$SEA_DIST_RAY_CONNECT_TIMEOUT_S`` or 30 s).

    Raises:
        ClusterError: the cluster cannot be found or does not answer within the timeout.
    """
    import ray

    if ray.is_initialized():
        return
    # Ray itself lets $RAY_ADDRESS win over the address argument; resolve it the same way.
    target = os.environ.get("RAY_ADDRESS") or address
    if not target:
        explicit_token_auth()
        ray.init(address="local", include_dashboard=False)
        return
    timeout = connect_timeout(timeout_s)
    deadline = time.monotonic() + timeout
    host, port = head_address(target)
    wait_reachable(target, host, port, deadline, timeout)
    _init_within(address or None, target, max(deadline - time.monotonic(), timeout / 2))


def explicit_token_auth() -> None:
    """Say ``RAY_AUTH_MODE=token`` for a local cluster this process starts, unless already set.

    Ray (2.60 here) turns token authentication on for every new local cluster (a token in
    ``~/.ray/auth_token``, created if missing) and prints a warning that it did whenever
    ``RAY_AUTH_MODE`` is unset. Setting the mode to ``token`` asks for exactly that default, so
    nothing is weakened (the local head binds to the node's address, not only to loopback) and
    the warning, which asks the user to opt out, is not printed. A mode the user chose (e.g.
    ``disabled`` for a throwaway test head) is left alone; joining a cluster never calls this.
    """
    if AUTH_MODE_ENV in os.environ:
        return
    os.environ[AUTH_MODE_ENV] = "token"
    try:
        # Ray caches its settings from the environment when first read; re-read them as Ray does
        # itself when it enables token mode, so this process and the head it starts agree.
        from ray._raylet import Config  # type: ignore[attr-defined]  # compiled, untyped

        Config.initialize("")
    except (ImportError, AttributeError):  # another Ray: keep its default (and its warning)
        del os.environ[AUTH_MODE_ENV]


def connect_timeout(timeout_s: float | None = None) -> float:
    """The connection timeout: ``timeout_s``, else ``$SEA_DIST_RAY_CONNECT_TIMEOUT_S``, else 30 s.

    Raises:
        ClusterError: the environment variable is not a positive number.
    """
    if timeout_s is not None:
        return float(timeout_s)
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return CONNECT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise ClusterError(
            f"${TIMEOUT_ENV}: expected seconds in (0, 3600], found {excerpt(text)}; fix or unset it"
        )
    return value


def head_address(target: str) -> tuple[str, int]:
    """The ``(host, port)`` that ``ray.init(address=target)`` will connect to.

    Raises:
        ClusterError: ``auto`` finds no cluster, or the address is not ``host:port``.
    """
    if target.startswith("ray://"):
        return _split_host_port(target, target[len("ray://") :], RAY_CLIENT_PORT)
    try:
        # Ray's own resolution of "auto" and of 127.0.0.1 (to the node's address); a private
        # API, so a Ray without it falls back to the address as given.
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:
        return _split_host_port(target, target, None)
    try:
        resolved = canonicalize_bootstrap_address(target)
    except (ConnectionError, ValueError, OSError) as error:
        reason = " ".join(str(error).split())[:160] or type(error).__name__
        raise ClusterError(
            f"ray address {excerpt(target)}: expected a running Ray cluster at host:port (or "
            f"'auto' on a machine running one), found {reason}; {_FIX}"
        ) from None
    if resolved is None:  # "local": nothing to probe
        return "", 0
    return _split_host_port(target, resolved, None)


def _split_host_port(target: str, text: str, default_port: int | None) -> tuple[str, int]:
    host, sep, port_text = text.rstrip("/").rpartition(":")
    if not sep or host.endswith(":"):  # no port, or a bare IPv6 address
        host, port_text = text.rstrip("/"), ""
    host = host.strip("[]")
    if not port_text and default_port is not None:
        return host, default_port
    if host and port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536:
        return host, int(port_text)
    raise ClusterError(
        f"ray address {excerpt(target)}: expected host:port (e.g. 10.0.0.5:6379 or "
        f"ray://10.0.0.5:10001), found no valid port; {_FIX}"
    )


def wait_reachable(target: str, host: str, port: int, deadline: float, timeout: float) -> None:
    """Probe ``host:port`` over TCP until it accepts a connection or ``deadline`` passes.

    Raises:
        ClusterError: the name does not resolve, or nothing accepted before the deadline.
    """
    if not host:
        return
    where = f"{excerpt(target)}" + (f" ({host}:{port})" if host not in target else "")
    reason = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            with socket.create_connection((host, port), timeout=min(remaining, 5.0)):
                return
        except socket.gaierror as error:
            raise ClusterError(
                f"ray cluster at {where}: expected a host name that resolves, found "
                f"{error.strerror or error}; {_FIX}"
            ) from None
        except TimeoutError:
            reason = "no answer (connection attempts time out)"
        except OSError as error:
            reason = error.strerror or type(error).__name__
            time.sleep(min(0.5, max(deadline - time.monotonic(), 0)))  # e.g. refused
    raise ClusterError(
        f"ray cluster at {where}: expected a Ray head that accepts connections within "
        f"{timeout:g} s, found {reason.lower()}; {_FIX}"
    )


def _init_within(address: str | None, target: str, seconds: float) -> None:
    """``ray.init(address)``, interrupted if it has not returned after ``seconds``.

    Only the main thread can be interrupted; elsewhere the TCP probe is the only bound.
    """
    import ray

    lock = threading.Lock()
    fired = threading.Event()
    finished = threading.Event()

    def interrupt() -> None:
        with lock:  # never interrupt once ray.init has returned
            if not finished.is_set():
                fired.set()
                _thread.interrupt_main()  # KeyboardInterrupt in the main thread

    watchdog = None
    if threading.current_thread() is threading.main_thread():
        watchdog = threading.Timer(seconds, interrupt)
        watchdog.daemon = True
        watchdog.start()
    try:
        try:
            ray.init(address=address)
        finally:
            with lock:
                finished.set()
            if watchdog is not None:
                watchdog.cancel()
    except KeyboardInterrupt:
        if not fired.is_set():
            raise  # the user pressed Ctrl-C
        _shutdown_quietly()
        raise ClusterError(
            f"ray cluster at {excerpt(target)}: expected a Ray head to answer within "
            f"{seconds:.0f} s, found a port that accepts connections but no Ray cluster behind "
            f"it; {_FIX}"
        ) from None


def _shutdown_quietly() -> None:
    import ray

    try:
        ray.shutdown()
    except Exception as error:  # noqa: BLE001 - best effort after an interrupted init
        log.debug("ray.shutdown after an interrupted init: %s", error)
