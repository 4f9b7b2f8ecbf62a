"""Shared fixtures: test JPEGs and a real tritonserver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from pipelines.untrained import make_untrained_checkpoint
from server.launch import Ports, TritonServer
from tests.support import (
    JPEG_SIZES,
    PHOTO,
    encode_jpeg,
    make_scenes,
)

# The soak's size in `make test`; `make soak` runs the full one (tests/test_soak.py).
SMALL_SOAK_REQUESTS = 250


# Fixtures that start a tritonserver: a test using one, directly or through another fixture,
# belongs to the server tier (`make test-fast` leaves it out). Tests that start their own server
# are marked by hand.
SERVER_FIXTURES = {"triton_server", "server", "soak"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks the tests that need a server ``server``."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line naming every test that did not run, grouped by why (no GPU, not root, a CPU
    without bfloat16): never silently."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    by_reason: dict[str, set[str]] = {}
    for report in skipped:
        reason = str(report.longrepr[-1]).removeprefix("Skipped: ")
        by_reason.setdefault(reason, set()).add(report.nodeid.split("::")[-1])
    terminalreporter.write_line(
        f"Did not run: {len(skipped)} test(s): "
        + "; ".join(
            f"{reason}: {', '.join(sorted(names))}" for reason, names in sorted(by_reason.items())
        )
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--soak-requests N``: how many requests tests/test_soak.py sends after its warm-up."""
    parser.addoption(
        "--soak-requests",
        type=int,
        default=SMALL_SOAK_REQUESTS,
        help=f"Requests the load and soak test sends (default {SMALL_SOAK_REQUESTS}; "
        "make soak sends more).",
    )


@pytest.fixture(scope="session")
def jpegs() -> dict[str, bytes]:
    """Test JPEGs by name, see ``JPEG_SIZES``."""
    photo = Image.open(PHOTO)
    photo.load()
    return {
        name: PHOTO.read_bytes() if size is None else encode_jpeg(photo.resize(size))
        for name, size in JPEG_SIZES.items()
    }


@pytest.fixture(scope="session")
def scenes() -> dict[str, bytes]:
    """Synthetic photos of meters and insulators, and one of nothing: see ``make_scenes``."""
    return make_scenes()


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """The real tritonserver on the real repository, on free ports, for the whole session."""
    ports = Ports.free()
    log_path = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    with TritonServer(
        ports, log_path=log_path, trace_file=log_path.with_name("trace.json")
    ) as server:
        server.wait_until_ready(timeout_s=600)
        yield server


@pytest.fixture(scope="session")
def untrained_weights(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """Makes (once per YAML) the untrained stand-in checkpoint of a detector config.

    The production R50-FPN YAMLs have no weights in the repository; tests that build or serve
    them use these.
    """
    made: dict[Path, Path] = {}

    def make(config: Path) -> Path:
        if config not in made:
            folder = tmp_path_factory.mktemp("untrained")
            made[config] = make_untrained_checkpoint(config, folder / f"{config.stem}.pth")
        return made[config]

    return make
