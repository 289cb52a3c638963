"""Ray for the commands that spread work over machines (`ntm sweep`, `ntm reproduce --ray`): importing it
with a one-line hint when the optional extra is missing, and joining a cluster or starting an embedded Ray.

Ray is imported only here, in a sweep's trials and in a reproduction's Ray tasks, and only when asked for.
"""

from __future__ import annotations

import logging
import os
import socket

from ntm.commands.usage import UsageError

INSTALL_HINT = 'pip install -e ".[sweep]"'
# Ray retries an unreachable head for minutes without a word; a plain TCP connect answers in seconds.
REACH_SECONDS = 10.0


def import_ray(command: str):
    """The `ray` module, or a one-line UsageError of `ntm COMMAND` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"ntm {command}: Ray is not installed; {INSTALL_HINT}") from None
    return ray


def start_ray(ray, address: str | None, num_cpus: int | None, command: str) -> bool:
    """Join the cluster at `address`, or start an embedded Ray; True if this call started (so must stop) it."""
    if ray.is_initialized():  # a program that started Ray itself keeps it
        return False
    options = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    if address:
        reach(address, command)
    try:
        if address:
            ray.init(address=address, **options)
        else:
            # "local": a new Ray of our own, never one that a `ray start` left running on this machine
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        text = " ".join(str(error).split())
        if "auth" in f"{text} {error.__cause__}".lower():
            text = ("the cluster wants its token: set RAY_AUTH_MODE=token and the cluster's token "
                    "(RAY_AUTH_TOKEN, or ~/.ray/auth_token)")
        where = f"join the Ray cluster at {address}" if address else "start Ray"
        raise UsageError(f"ntm {command}: could not {where}: {text[:300]}") from None
    return True


def reach(address: str, command: str, seconds: float = REACH_SECONDS) -> None:
    """A one-line UsageError unless a TCP connection to the head at `address` (HOST:PORT, or Ray Client's
    ray://HOST:PORT) opens within `seconds`; other forms ("auto") are left to Ray."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit() or "/" in host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except OSError as error:
        why = "no answer" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise UsageError(f"ntm {command}: could not join the Ray cluster at {address}: {why} within "
                         f"{seconds:g} s (is `ray start --head` running there, and is the port open?)") from None


def largest_node_cpus(ray) -> int:
    """The CPUs of the largest live machine of the cluster (a task asking for more would never start)."""
    return int(max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node.get("Alive")), default=1))
