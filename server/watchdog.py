"""Runs ``tritonserver`` and reloads any model whose python-backend stub process dies.

In Triton 2.51 a python-backend model whose stub is killed (out of memory, ``kill -9``) is never
restarted, and both ``/v2/health/ready`` and the model's ready endpoint stay green while every
request fails with ``Stub process '<model>_0' is not healthy.`` (triton-inference-server/server
#8604, #7862). This supervisor closes that gap from outside the server:

1. it starts the given ``tritonserver`` command (which must load every model in explicit model
   control mode), forwards SIGINT/SIGTERM to it and exits with its exit code, having removed
   from /dev/shm the regions of stubs that the server left behind;
2. every ``--interval`` seconds it counts each ready python model's stub processes (children of
   the server whose first argument is ``<repository>/<model>/<version>/model.py``) against its
   instances;
3. when one is missing it **unloads** the model, so that the model's and the server's readiness
   turn red (ensembles using the model go with it), then **loads** it again, which starts fresh
   stubs and brings the ensembles back. A load that fails is retried, less and less often.

The repository API it uses is restricted to a per-run secret header, so clients cannot load or
unload models although the server runs in explicit mode (the API was closed to them in the
default mode, too).

``make serve``, the test suite and the container all start the server through this module::

    python -m server.watchdog -- tritonserver --model-repository=... \\
        --model-control-mode=explicit --load-model=* ...
"""

from __future__ import annotations

import argparse
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import tritonclient.http as httpclient

__all__ = ["REQUIRED_FLAGS", "StubWatchdog", "expected_stubs", "find_stubs", "main"]

# The repository API (unload/load) exists only in explicit mode; "*" loads every model at start.
REQUIRED_FLAGS = ("--model-control-mode=explicit", "--load-model=*")
STUB_EXECUTABLE = "triton_python_backend_stub"
# The header the repository API asks for; its value is drawn anew for every run.
SECRET_HEADER = "watchdog-key"
SHARED_MEMORY = Path("/dev/shm")
# Retries of a model that failed to load again wait longer each time, up to this.
MAX_RETRY_DELAY_S = 60.0


def _log(message: str) -> None:
    print(f"watchdog: {message}", file=sys.stderr, flush=True)


def _stub_processes(server_pid: int) -> Iterator[tuple[str, int, str]]:
    """``(model, pid, shared-memory region name)`` of each stub process of a server."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            status = (entry / "status").read_text()
        except OSError:  # the process ended while we looked
            continue
        if len(argv) < 3 or Path(argv[0]).name != STUB_EXECUTABLE:
            continue
        parent = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
        if int(parent) == server_pid:
            # argv[1] is <repository>/<model>/<version>/model.py, argv[2] the stub's region
            yield Path(argv[1]).parts[-3], int(entry.name), argv[2]


def find_stubs(server_pid: int) -> dict[str, set[int]]:
    """The python-backend stub processes of a server, by model name.

    Args:
        server_pid: process id of ``tritonserver``; its stubs are its direct children.
    """
    stubs: dict[str, set[int]] = {}
    for model, pid, _ in _stub_processes(server_pid):
        stubs.setdefault(model, set()).add(pid)
    return stubs


def expected_stubs(model_config: dict[str, Any]) -> int:
    """How many stub processes a loaded model runs: one per python-backend instance.

    Args:
        model_config: the model's configuration as the server reports it (JSON).
    """
    if model_config.get("backend") != "python":
        return 0
    return sum(
        group.get("count", 1) * max(1, len(group.get("gpus", [])))
        for group in model_config.get("instance_group", [])
    )


class StubWatchdog:
    """Watches a running server's stub processes and reloads a model when one of its stubs dies.

    A model is broken when the server reports it ready but fewer stubs run for it than it has
    python-backend instances; models that are loading or unloading are left alone.

    Examples:
        >>> watchdog = StubWatchdog(server_pid, "localhost:8000", {"watchdog-key": token})
        >>> threading.Thread(target=watchdog.run, daemon=True).start()
    """

    def __init__(
        self,
        server_pid: int,
        http_url: str,
        headers: dict[str, str],
        interval_s: float = 1.0,
        log: Callable[[str], None] = _log,
    ) -> None:
        """Nothing is checked until :meth:`run` or :meth:`check`.

        Args:
            server_pid: process id of ``tritonserver``.
            http_url: ``host:port`` of its HTTP endpoint.
            headers: what the repository API asks for (the secret header).
            interval_s: seconds between two checks.
            log: where to report deaths and reloads.
        """
        self.server_pid = server_pid
        self.interval_s = interval_s
        self._http_url = http_url
        self._headers = headers
        self._log = log
        self._stopped = threading.Event()
        self._expected: dict[str, int] = {}
        # pid -> shared-memory region of every stub seen alive
        self._regions: dict[int, str] = {}
        # model -> (monotonic time of the next attempt, delay after that one fails)
        self._retries: dict[str, tuple[float, float]] = {}

    def _connect(self) -> httpclient.InferenceServerClient:
        # A connection per use: one held open would delay the server's shutdown, which waits
        # for open HTTP connections. Reloading a detector on a busy CPU can take a minute.
        return httpclient.InferenceServerClient(
            self._http_url, connection_timeout=600.0, network_timeout=600.0
        )

    def stop(self) -> None:
        """Makes :meth:`run` return after its current check; no reload starts after this."""
        self._stopped.set()

    def run(self) -> None:
        """Checks every ``interval_s`` seconds until stopped."""
        while not self._stopped.wait(self.interval_s):
            self.check()

    def note_stubs(self) -> dict[str, set[int]]:
        """Notes the shared-memory region of every stub running now, for
        :meth:`remove_dead_regions`; returns their process ids by model."""
        alive: dict[str, set[int]] = {}
        for model, pid, region in _stub_processes(self.server_pid):
            alive.setdefault(model, set()).add(pid)
            self._regions[pid] = region
        return alive

    def check(self) -> list[str]:
        """One round: reloads each ready model that lacks a stub, and retries failed reloads.

        Returns:
            the models reloaded successfully in this round.
        """
        # Noted before anything else, so that a stub dying soon after the start is cleaned up.
        alive = self.note_stubs()
        try:
            with self._connect() as client:
                index = client.get_model_repository_index(headers=self._headers)
                ready = {m["name"] for m in index if m.get("state") == "READY"}
                for model in ready - self._expected.keys():
                    self._expected[model] = expected_stubs(client.get_model_config(model))
        except Exception:  # not up yet, or shutting down: nothing to judge
            return []
        for model in sorted(ready - self._retries.keys()):
            running = alive.get(model, set())
            if len(running) < self._expected[model]:
                self._log(
                    f"model '{model}' runs {len(running)} of its {self._expected[model]} "
                    "stub processes: one died"
                )
                self._retries[model] = (0.0, self.interval_s)
        reloaded = []
        for model, (due, delay) in sorted(self._retries.items()):
            if self._stopped.is_set() or time.monotonic() < due:
                continue
            if self._reload(model):
                reloaded.append(model)
                del self._retries[model]
            else:
                self._retries[model] = (time.monotonic() + delay, min(2 * delay, MAX_RETRY_DELAY_S))
        return reloaded

    def _reload(self, model: str) -> bool:
        started = time.monotonic()
        # Its configuration may change with the reload.
        self._expected.pop(model, None)
        try:
            with self._connect() as client:
                # Unload first: a plain load keeps the broken version serving (and reported
                # ready) until the new one is up.
                client.unload_model(model, headers=self._headers)
                while client.is_model_ready(model):
                    time.sleep(0.05)
                self._log(f"unloaded '{model}': it and the server report not ready until reloaded")
                client.load_model(model, headers=self._headers)
        except Exception as error:
            self._log(f"reloading '{model}' failed, will retry: {error}")
            return False
        self._log(f"reloaded '{model}' in {time.monotonic() - started:.1f} s")
        self.remove_dead_regions()
        return True

    def remove_dead_regions(self) -> None:
        """Removes from /dev/shm the region of every noted stub that no longer runs.

        The python backend unlinks a stub's region (64 MiB and more) when it unloads the model,
        not when the stub is killed, nor when the server exits without unloading: a crash, or a
        drain whose exit timeout an idle HTTP keep-alive connection used up.
        """
        alive = {pid for _, pid, _ in _stub_processes(self.server_pid)}
        for pid, region in list(self._regions.items()):
            if pid in alive:
                continue
            # The checking thread and the exiting main thread may both get here.
            self._regions.pop(pid, None)
            path = SHARED_MEMORY / region
            if path.exists():
                path.unlink(missing_ok=True)
                self._log(f"removed {path}, left by the dead stub {pid}")


def _http_port(command: Sequence[str]) -> int:
    for word in command:
        if word.startswith("--http-port="):
            return int(word.split("=", 1)[1])
    return 8000


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options of ``python -m server.watchdog``."""
    parser = argparse.ArgumentParser(
        description="Run tritonserver and reload any model whose python-backend stub process "
        "dies, so that readiness reports the broken model and service comes back by itself.",
        usage="python -m server.watchdog [--interval S] -- tritonserver [FLAGS ...]",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="Seconds between two checks of the stub processes. Default is 1.",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="The tritonserver command.")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("give the tritonserver command after --")
    missing = [flag for flag in REQUIRED_FLAGS if flag not in args.command]
    if missing:
        parser.error(
            f"the server command lacks {' '.join(missing)}: the watchdog reloads models "
            "through the repository API, which only explicit model control mode offers"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the server under the watchdog until it exits; returns its exit code."""
    args = parse_args(argv)
    secret = secrets.token_hex(16)
    command = [
        *args.command,
        f"--http-restricted-api=model-repository:{SECRET_HEADER}={secret}",
        f"--grpc-restricted-protocol=model-repository:{SECRET_HEADER}={secret}",
    ]
    server = subprocess.Popen(command)

    watchdog = StubWatchdog(
        server.pid, f"localhost:{_http_port(command)}", {SECRET_HEADER: secret}, args.interval
    )

    def forward(signum: int, _frame: object) -> None:
        # Stubs end with the server: they must not be taken for deaths. Triton ignores a second
        # signal while it shuts down, so one that reached the whole process group does no harm.
        watchdog.stop()
        # A stub started since the last check would otherwise go unnoted.
        watchdog.note_stubs()
        server.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    threading.Thread(target=watchdog.run, name="stub-watchdog", daemon=True).start()
    code = server.wait()
    watchdog.stop()
    watchdog.remove_dead_regions()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
