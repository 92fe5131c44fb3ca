"""Several uvicorn workers, each with its own listening socket, so connections spread over them.

uvicorn's ``--workers`` binds one socket in the supervisor and every worker
accepts from it. Whichever worker's event loop wakes first takes every
connection waiting in the queue, so a client that opens its connection pool
at once (a load balancer, a backend's HTTP pool, wrk) can find all of its
long-lived connections on one worker while the other idles: measured here
with 32 wrk connections, 32 on one worker and none on the other, half the
capacity (docs/performance.md, "2026-12-06 (night)").

Here the supervisor binds one socket per worker, all on the same address
with ``SO_REUSEPORT``, and worker ``i`` only ever accepts from socket ``i``.
The kernel then hands each new connection to one of the sockets by a hash
of its addresses and ports, so connections split about evenly, whatever
the workers are doing. A replaced worker (died, or restarted by SIGHUP)
takes over its slot's socket, which the supervisor keeps open, so no
connection is refused while it starts. Everything else is uvicorn's own
supervisor: health checks, restarts, signals.
"""

from __future__ import annotations

import socket
import sys

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process, logger


def reuseport_sockets(host: str, port: int, n: int) -> list[socket.socket]:
    """``n`` listening-ready TCP sockets bound to ``host:port`` with ``SO_REUSEPORT``.

    ``port=0`` picks a free port for the first and binds the others to it.
    Exits like uvicorn (``STARTUP_FAILURE``) when the address is taken.
    """
    if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - Linux and the BSDs have it
        raise RuntimeError("this platform has no SO_REUSEPORT: run one worker, or uvicorn's own --workers")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    out: list[socket.socket] = []
    for _ in range(n):
        sock = socket.socket(family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            for s in (*out, sock):
                s.close()
            logger.error(exc)
            sys.exit(STARTUP_FAILURE)
        port = sock.getsockname()[1]
        sock.set_inheritable(True)
        out.append(sock)
    logger.info("Uvicorn running on http://%s:%d with %d sockets (SO_REUSEPORT)", host, port, n)
    return out


class SpreadWorkers(Multiprocess):
    """uvicorn's supervisor, with worker ``i`` started on ``sockets[i]`` alone (see the module doc)."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        if len(sockets) != config.workers:
            raise ValueError(f"one socket per worker: {config.workers} workers, {len(sockets)} sockets")
        super().__init__(config, sockets)

    def _new(self, slot: int) -> Process:
        process = Process(self.config, [self.sockets[slot]])
        process.start()
        return process

    def init_processes(self) -> None:
        self.processes = [self._new(slot) for slot in range(self.processes_num)]

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for slot, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung: kill it
            process.join()
            if process.exitcode == STARTUP_FAILURE:  # the app cannot start: restarting would fail the same way
                logger.error(f"Child process [{process.pid}] failed to start, stopping the parent process.")
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info(f"Child process [{process.pid}] died")
            self.processes[slot] = self._new(slot)

    def restart_all(self) -> None:
        """Replace each worker (SIGHUP), the new one serving its slot's socket before the old one stops."""
        for slot, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._new(slot)
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                if not self.should_exit.is_set():
                    logger.error(f"New child process [{new.pid}] was not ready in time; "
                                 f"keeping worker [{old.pid}] and aborting the restart.")
                return
            old.terminate()
            old.join()
            self.processes[slot] = new
