"""A ``camroll serve`` replica of a cluster, started when it is ready to take requests."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from support.server import ServerProcess


@dataclass
class Replica(ServerProcess):
    """A ``camroll serve`` of the cluster: started when its /readyz answers 200 (database, storage and
    queue reachable, schema current); its environment carries the cluster's shared database URL."""

    ready_path: str = "/readyz"


def start_replicas(replicas: list[Replica]) -> None:
    """Start every replica at once, as a deployment's units do after an upgrade: their start-up
    migrations race on the same database and must agree."""
    errors: list[BaseException] = []

    def one(r: Replica) -> None:
        try:
            r.start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
