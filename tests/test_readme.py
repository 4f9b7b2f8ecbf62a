"""The README agrees with the code: the tolerances and margins it quotes are the tests' own
constants, the make targets it names exist, and its links lead somewhere."""

from __future__ import annotations

import re

import pytest

from server.launch import REPO_ROOT
from tests.conftest import SMALL_SOAK_REQUESTS
from tests.support import MAX_BORDER_DIFF, MAX_INTERIOR_DIFF, MAX_MEAN_DIFF
from tests.test_jpeg_inputs import CMYK_MAX_MEAN_DIFF
from tests.test_soak import MEMORY_MARGIN_MIB, SHM_GROWTH_MARGIN_MIB

README = (REPO_ROOT / "README.md").read_text()
MAKEFILE = (REPO_ROOT / "Makefile").read_text()


def number(value: float) -> str:
    """How the README writes a constant: ``0.2``, ``2``, ``256``."""
    return f"{value:g}"


@pytest.mark.parametrize(
    "quoted",
    [
        f"mean absolute\ndifference at most {number(MAX_MEAN_DIFF)} levels",
        f"at most {number(MAX_INTERIOR_DIFF)} levels inside the image",
        f"at most {number(MAX_BORDER_DIFF)} on the outermost",
        f"the tests allow {number(CMYK_MAX_MEAN_DIFF)}",
        f"within **{number(MEMORY_MARGIN_MIB)} MiB**",
        f"by at most **{number(SHM_GROWTH_MARGIN_MIB)} MiB**",
        f"with {SMALL_SOAK_REQUESTS} requests",
    ],
)
def test_readme_quotes_the_tests_constants(quoted: str) -> None:
    assert " ".join(quoted.split()) in " ".join(README.split())


def test_readme_quotes_the_makefiles_soak_size() -> None:
    soak_requests = re.search(r"^SOAK_REQUESTS \?= (\d+)$", MAKEFILE, re.M)
    assert soak_requests
    assert f"`make soak` with {soak_requests[1]}" in README


def test_make_targets_in_the_readme_exist() -> None:
    targets = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, re.M))
    named = set(re.findall(r"`make ([a-z][a-z-]*)", README))
    named |= set(re.findall(r"^make ([a-z][a-z-]*)", README, re.M))
    assert named, "the README names no make target"
    assert named <= targets, f"not in the Makefile: {sorted(named - targets)}"


def test_relative_links_lead_to_files() -> None:
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README)
    assert links, "the README links nothing"
    missing = [link for link in links if not (REPO_ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"
