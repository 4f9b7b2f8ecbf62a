"""Starts the real ``tritonserver`` on this repository's model repository.

``make serve`` runs this module; the test suite uses :class:`TritonServer` to start the same
server, with the same arguments, on free ports.

The python-backend stub embeds Python and ignores ``PYTHONPATH``. It finds its packages the way a
shell with an activated virtual environment does: the server is started with the venv's ``bin``
first on ``PATH``, so the stub's interpreter takes the venv as its prefix and imports the
project's packages through the editable install. ``config.pbtxt`` files therefore name no
environment path, and the same repository runs unchanged in NVIDIA's container.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import tritonclient.http as httpclient

from server.backend import assemble_backend_directory, find_triton_install, python_library_dir
from server.watchdog import REQUIRED_FLAGS, find_stubs

__all__ = [
    "EXIT_TIMEOUT_S",
    "REPO_ROOT",
    "STOP_MARGIN_S",
    "Ports",
    "ServerStartError",
    "TritonServer",
    "child_processes",
    "main",
    "processes_in_group",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

# The python backend's default shared-memory pool (1 MiB, grown 1 MiB at a time) is far below
# one preprocessed image (800x1333x3 bytes is 3.2 MB); size it for a full batch up front.
SHM_DEFAULT_BYTES = 64 * 1024 * 1024
SHM_GROWTH_BYTES = 32 * 1024 * 1024
# Ensemble and BLS tensors on a GPU come from Triton's CUDA pool (64 MiB by default). When it is
# full they fall back to pinned host memory, and the python backend of Triton 2.51 then copies
# GPU tensors with the wrong direction flag and answers anyway (server #7148): silent garbage.
# A batch of 8 photos preprocessed for two detectors at 800x1333 is 8 x 2 x 3.2 MB = 51 MB, with
# more batches and the detectors' inputs in flight; 256 MiB per GPU leaves room for that.
CUDA_POOL_BYTES = 256 * 1024 * 1024
# tritonserver's drain on SIGTERM (Triton's default, named so that stop() can outwait it): it
# waits for open HTTP connections, idle keep-alive ones included, then for in-flight requests and
# model unloads with what is left. With the time spent it exits without unloading the models,
# and the watchdog removes the stub regions that leaves in /dev/shm.
EXIT_TIMEOUT_S = 30
# What stop() allows beyond the drain, for the exit and the watchdog's cleanup, before it kills.
STOP_MARGIN_S = 15


class ServerStartError(RuntimeError):
    """tritonserver exited or did not become ready; the message carries the end of its log."""


@dataclass(frozen=True)
class Ports:
    """The three ports the server listens on."""

    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002

    @classmethod
    def free(cls) -> Ports:
        """Three ports the kernel reports free right now on 127.0.0.1 (held open together, so
        they differ), for a server beside others: tests, benchmarks, trials."""
        with contextlib.ExitStack() as stack:
            sockets = [stack.enter_context(socket.socket()) for _ in range(3)]
            for sock in sockets:
                sock.bind(("127.0.0.1", 0))
            return cls(*(sock.getsockname()[1] for sock in sockets))


class TritonServer:
    """A ``tritonserver`` process serving a model repository.

    Examples:
        >>> with TritonServer(Ports(18000, 18001, 18002), log_path=Path("triton.log")) as server:
        ...     server.wait_until_ready()
    """

    def __init__(
        self,
        ports: Ports,
        model_repository: Path = REPO_ROOT / "repository",
        build_dir: Path = REPO_ROOT / "build" / "triton",
        log_path: Path | None = None,
        cuda_memory_pool_bytes: int = CUDA_POOL_BYTES,
        trace_file: Path | None = None,
        exit_timeout_s: int = EXIT_TIMEOUT_S,
    ) -> None:
        """Prepares the command; nothing starts until :meth:`start`.

        Args:
            ports: HTTP, gRPC and metrics ports.
            model_repository: the Triton model repository to serve.
            build_dir: where the backend directory is assembled.
            log_path: file for the server's log; ``None`` inherits this process's stdout.
            cuda_memory_pool_bytes: each GPU's CUDA memory pool, where ensemble intermediates live
                (the GPU tests shrink it to prove an exhausted pool fails loudly).
            trace_file: where Triton writes request traces, ``<file>.<n>`` every
                ``log_frequency`` traces; tracing starts off and is turned on through the trace
                API (``update_trace_settings``), which cannot name the file itself.
            exit_timeout_s: the server's ``--exit-timeout-secs``; :meth:`stop` waits that long
                and ``STOP_MARGIN_S`` more before it kills.
        """
        self.ports = ports
        self.model_repository = model_repository
        self.log_path = log_path
        self.cuda_memory_pool_bytes = cuda_memory_pool_bytes
        self.trace_file = trace_file
        self.exit_timeout_s = exit_timeout_s
        self._install = find_triton_install()
        self._backend_dir = assemble_backend_directory(self._install, build_dir)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        """The full command line: ``tritonserver`` under :mod:`server.watchdog`."""
        return [
            sys.executable,
            "-m",
            "server.watchdog",
            "--",
            str(self._install.server_binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={self._backend_dir}",
            f"--http-port={self.ports.http}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-port={self.ports.metrics}",
            # config.pbtxt files are complete; nothing is guessed from the models.
            "--disable-auto-complete-config",
            *REQUIRED_FLAGS,
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--backend-config=python,shm-default-byte-size={SHM_DEFAULT_BYTES}",
            f"--backend-config=python,shm-growth-byte-size={SHM_GROWTH_BYTES}",
            # One pool per GPU: a GPU left out keeps the 64 MiB default, and its instances the
            # silent corruption above.
            *(
                f"--cuda-memory-pool-byte-size={gpu}:{self.cuda_memory_pool_bytes}"
                for gpu in visible_gpus()
            ),
            # GPU metrics need NVML; without a GPU they only add errors to the log.
            f"--allow-gpu-metrics={'true' if _has_nvidia_gpu() else 'false'}",
            *(
                [f"--trace-config=triton,file={self.trace_file}", "--trace-config=level=OFF"]
                if self.trace_file is not None
                else []
            ),
        ]

    def environment(self) -> dict[str, str]:
        """The server's environment: this venv activated, the wheel's libraries found."""
        env = dict(os.environ)
        venv_bin = Path(sys.prefix) / "bin"
        env["PATH"] = os.pathsep.join([str(venv_bin), env.get("PATH", "")])
        if sys.prefix != sys.base_prefix:
            env["VIRTUAL_ENV"] = sys.prefix
        env.pop("PYTHONHOME", None)
        library_dirs = [str(self._install.library_dir)]
        libpython = python_library_dir()
        if libpython is not None:
            library_dirs.insert(0, str(libpython))
        if env.get("LD_LIBRARY_PATH"):
            library_dirs.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(library_dirs)
        return env

    def start(self) -> None:
        """Starts watchdog and server in a new process group, which :meth:`stop` ends whole."""
        if self._process is not None:
            raise RuntimeError("server already started")
        stdout: IO[bytes] | None = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = stdout = self.log_path.open("wb")
        self._process = subprocess.Popen(
            self.command(),
            env=self.environment(),
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout else None,
            start_new_session=True,
        )

    def url(self, protocol: str) -> str:
        """``localhost:PORT`` of the server's ``"http"`` or ``"grpc"`` endpoint."""
        ports = {"http": self.ports.http, "grpc": self.ports.grpc}
        return f"localhost:{ports[protocol]}"

    @property
    def pid(self) -> int | None:
        """Process id of the watchdog running the server (and of their process group)."""
        return self._process.pid if self._process else None

    def stubs(self) -> dict[str, set[int]]:
        """Process ids of the python-backend stubs by model name (none before or after a run)."""
        if self._process is None or self._process.poll() is not None:
            return {}
        # The watchdog's one child is tritonserver, whose children are the stubs.
        return {
            model: pids
            for server_pid in child_processes(self._process.pid)
            for model, pids in find_stubs(server_pid).items()
        }

    def wait_until_ready(self, timeout_s: float = 300.0) -> None:
        """Blocks until every model is loaded and the server reports ready.

        Raises:
            ServerStartError: the server exited, or was not ready within ``timeout_s``.
        """
        if self._process is None:
            raise RuntimeError("server not started")
        client = httpclient.InferenceServerClient(f"localhost:{self.ports.http}")
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise ServerStartError(
                        f"tritonserver exited with code {self._process.returncode}"
                        f"{self._log_tail()}"
                    )
                try:
                    if client.is_server_ready():
                        return
                except Exception:  # not listening yet
                    pass
                time.sleep(0.5)
        finally:
            client.close()
        raise ServerStartError(
            f"tritonserver was not ready after {timeout_s:.0f} s{self._log_tail()}"
        )

    def wait(self) -> int:
        """Blocks until the server exits; returns its exit code."""
        if self._process is None:
            raise RuntimeError("server not started")
        return self._process.wait()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stops the server and every stub process it started; idempotent.

        Args:
            timeout_s: how long the server may take before its process group is killed; by
                default its exit timeout and ``STOP_MARGIN_S``.
        """
        if self._process is None:
            return
        if timeout_s is None:
            timeout_s = self.exit_timeout_s + STOP_MARGIN_S
        if self._process.poll() is None:
            # The watchdog passes it on to the server and exits with it.
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(self._process.pid, signal.SIGKILL)
                self._process.wait()
        # Stubs whose server is gone exit on their own; make sure none outlives us. A stub that
        # died earlier may linger as a zombie until init reaps it once the server is gone.
        _signal_group(self._process.pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout_s
        while processes_in_group(self._process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        """The server's log so far ('' when it logs to the terminal)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def _log_tail(self, lines: int = 40) -> str:
        text = self.log_text()
        if not text:
            return ""
        return "\n--- end of tritonserver log ---\n" + "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def child_processes(pid: int) -> list[int]:
    """Process ids of the direct children of process ``pid`` (of its main thread)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def processes_in_group(pgid: int) -> list[int]:
    """Process ids of the processes in process group ``pgid`` (zombies included)."""
    pids = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(ValueError, ProcessLookupError):
            if os.getpgid(int(entry.name)) == pgid:
                pids.append(int(entry.name))
    return pids


def visible_gpus() -> list[int]:
    """Triton's ids of the GPUs it will see: ``CUDA_VISIBLE_DEVICES``'s entries where it is set,
    else every GPU ``nvidia-smi -L`` lists. Always at least GPU 0, so that the command is the
    same on a machine without a GPU as in the image, whose ``CMD`` sizes GPU 0's pool."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        count = len([entry for entry in visible.split(",") if entry.strip()])
    elif shutil.which("nvidia-smi") is not None:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        count = sum(line.startswith("GPU ") for line in listed.stdout.splitlines())
    else:
        count = 0
    return list(range(max(1, count)))


def _has_nvidia_gpu() -> bool:
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


def _model_names(model_repository: Path) -> list[str]:
    return sorted(p.parent.name for p in model_repository.glob("*/config.pbtxt"))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options of ``python -m server.launch``."""
    parser = argparse.ArgumentParser(
        description="Start tritonserver (from the nvidia-pytriton wheel) on the model repository "
        "and print where it listens once every model is ready. Ctrl-C stops it.",
    )
    parser.add_argument("--http-port", type=int, default=8000, help="HTTP port. Default is 8000.")
    parser.add_argument("--grpc-port", type=int, default=8001, help="gRPC port. Default is 8001.")
    parser.add_argument(
        "--metrics-port", type=int, default=8002, help="Prometheus metrics port. Default is 8002."
    )
    parser.add_argument(
        "--model-repository",
        type=Path,
        default=REPO_ROOT / "repository",
        help="Triton model repository. Default is repository/ of this checkout.",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="Seconds to wait for every model to load. Default is 600.",
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: object) -> None:
    """The first SIGINT or SIGTERM stops the server; later ones are ignored.

    Signals come twice as often as once (Ctrl-C pressed again, GNU make passing its own on, a
    kill of the process group): a second one raised inside ``TritonServer.stop()`` would leave
    the watchdog, the server and its stubs running with no parent.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the server in the foreground until interrupted; returns the exit code."""
    args = parse_args(argv)
    ports = Ports(args.http_port, args.grpc_port, args.metrics_port)
    server = TritonServer(ports, model_repository=args.model_repository.resolve())
    print(f"Starting tritonserver on {args.model_repository} ...", flush=True)
    server.start()
    # A terminal's Ctrl-C or a supervisor's SIGTERM reaches only this process (the server has
    # its own session), and this process stops the server.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        server.wait_until_ready(timeout_s=args.timeout)
        models = ", ".join(_model_names(args.model_repository))
        print(
            "\n"
            f"Triton is ready. Models: {models}\n"
            f"  HTTP     http://localhost:{ports.http}\n"
            f"  gRPC     localhost:{ports.grpc}\n"
            f"  metrics  http://localhost:{ports.metrics}/metrics\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        return server.wait()
    except ServerStartError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping tritonserver ...", flush=True)
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
