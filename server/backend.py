"""Locates the Triton server shipped in the ``nvidia-pytriton`` wheel and lays out its backends.

The wheel carries a complete ``tritonserver`` and its python backend, but not in the layout
``--backend-directory`` expects: the stub for each Python version sits apart from the backend
library. :func:`assemble_backend_directory` links the pieces for this interpreter into
``<build>/backends/python/``.
"""

from __future__ import annotations

import importlib.util
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TritonInstall", "assemble_backend_directory", "find_triton_install"]


@dataclass(frozen=True)
class TritonInstall:
    """Paths inside the installed ``nvidia-pytriton`` wheel.

    Attributes:
        server_binary: the ``tritonserver`` executable.
        python_backend: folder with ``libtriton_python.so`` and ``triton_python_backend_utils.py``.
        stub: ``triton_python_backend_stub`` built for the running Python version.
        library_dir: the wheel's bundled shared libraries (``nvidia_pytriton.libs``).
    """

    server_binary: Path
    python_backend: Path
    stub: Path
    library_dir: Path


def find_triton_install() -> TritonInstall:
    """Finds the server files of the ``nvidia-pytriton`` wheel in this environment.

    Raises:
        FileNotFoundError: the wheel, or a file it should hold, is missing; the message says
            which and how to install it.
    """
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "nvidia-pytriton is not installed in this environment; run `make venv` "
            "(it provides the tritonserver binary)"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    install = TritonInstall(
        server_binary=root / "bin" / "tritonserver",
        python_backend=root / "backends" / "python",
        stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
        library_dir=root.parent.parent / "nvidia_pytriton.libs",
    )
    for path in (install.server_binary, install.python_backend, install.stub, install.library_dir):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing from the nvidia-pytriton install")
    return install


def assemble_backend_directory(install: TritonInstall, build_dir: Path) -> Path:
    """Links the python backend and this Python's stub into ``build_dir/backends/python``.

    Idempotent: existing links are replaced, so a venv rebuilt elsewhere is picked up.

    Args:
        install: where the wheel's files are.
        build_dir: folder for generated files (created if needed).

    Returns:
        The directory to pass as ``tritonserver --backend-directory``.
    """
    backends = build_dir / "backends"
    python_dir = backends / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    sources = [
        install.python_backend / "libtriton_python.so",
        install.python_backend / "triton_python_backend_utils.py",
        install.stub,
    ]
    for source in sources:
        link = python_dir / source.name
        link.unlink(missing_ok=True)
        link.symlink_to(source.resolve())
    return backends


def python_library_dir() -> Path | None:
    """The folder of this interpreter's ``libpython``, if it was built as a shared library.

    The stub links ``libpython3.X.so``; putting this folder first on ``LD_LIBRARY_PATH`` makes
    the stub embed the very interpreter the virtual environment was made from rather than
    whichever ``libpython3.X`` the system happens to have.
    """
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return None
    libdir = sysconfig.get_config_var("LIBDIR")
    return Path(libdir) if libdir else None
