"""Which detectors a request asks for."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ALL_MODELS", "RoutingError", "choose_detectors", "parse_detectors"]

# The choice that runs every detector.
ALL_MODELS = "both"


class RoutingError(ValueError):
    """The request names no known detector; the message lists the choices."""


def choose_detectors(requested: str | None, detectors: Sequence[str], default: str) -> list[str]:
    """Resolves a request's model choice to the detectors to run, in repository order.

    Args:
        requested: the request's choice (``"pointer"``, ``"insulator"``, ``"both"``, or several
            detector names joined by commas); ``None`` or empty takes ``default``.
        detectors: every detector the router serves.
        default: the choice when the request makes none.

    Raises:
        RoutingError: a name is not one of ``detectors`` or :data:`ALL_MODELS`.
    """
    choice = (requested or "").strip() or default
    if choice == ALL_MODELS:
        return list(detectors)
    names = [name.strip() for name in choice.split(",")]
    unknown = [name for name in names if name not in detectors]
    if unknown or not names:
        choices = ", ".join([*detectors, ALL_MODELS])
        raise RoutingError(
            f"unknown model {', '.join(map(repr, unknown))}; choose one of {choices}"
        )
    return [name for name in detectors if name in names]


def parse_detectors(text: str) -> dict[str, str]:
    """Reads the router's ``detectors`` parameter: ``"pointer=POINTER_IMAGE,insulator=..."``.

    Returns:
        Detector name -> the preprocessing output that is its image, in answer order.

    Raises:
        ValueError: an entry is not ``name=OUTPUT``, or a detector is named twice.
    """
    detectors: dict[str, str] = {}
    for entry in text.split(","):
        name, _, image = (part.strip() for part in entry.partition("="))
        if not name or not image:
            raise ValueError(f"detectors: expected 'detector=IMAGE_OUTPUT,...', got {text!r}")
        if name in detectors:
            raise ValueError(f"detectors: {name!r} is named twice in {text!r}")
        detectors[name] = image
    return detectors
