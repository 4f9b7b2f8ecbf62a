"""Text printed on a dial's face, read with PP-OCR and nothing downloaded.

``rapidocr_onnxruntime`` carries PP-OCRv4's text detection and recognition models (ONNX) inside
its wheel and runs them with ``onnxruntime`` on the CPU. Each dial is read on its rectified face
(``bls.meters.geometry.Face``): the photo is warped so that the dial's outline becomes a circle
of :data:`FACE_SIZE` pixels, which undoes the tilt that shears numerals and brings small dials
to the size the detector reads well. What comes back is in face coordinates (the outline is the
unit circle, the pivot the origin), so that a numeral's angle and radius on the face are read
off directly (``bls.meters.printed``).

Importable without Triton and without the OCR package: :class:`OcrEngine` imports it when
built and raises :class:`OcrUnavailableError`, naming the package, where it is missing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pipelines.tensors import JPEG, Contract, TensorSpec

__all__ = [
    "FACES",
    "FACE_SIZE",
    "OCR",
    "TEXT",
    "OcrEngine",
    "OcrUnavailableError",
    "TextLine",
    "face_patch",
    "lines_from_json",
    "lines_to_json",
    "read_faces",
]

FACES = "FACES"
"""``float32 [N, 3, 3]``: per dial the homography from photo pixels to its face (the outline the
unit circle), as ``bls.meters.geometry.Face.homography``."""
TEXT = "TEXT"
"""``bytes [1]``: the text on each face, one JSON document (:func:`lines_to_json`)."""
OCR = Contract(
    inputs=(TensorSpec(JPEG, "TYPE_UINT8", (-1,)), TensorSpec(FACES, "TYPE_FP32", (-1, 3, 3))),
    outputs=(TensorSpec(TEXT, "TYPE_STRING", (1,)),),
)
"""The ``ocr`` model's tensors: the photo's JPEG bytes and the faces in, their text out."""

# Side of the rectified face in pixels. Numerals on it are 15-30 pixels high, where PP-OCR's
# detector and recognizer (trained on 48-pixel text lines) read best.
FACE_SIZE = 320
# The detector resizes the face so that its longer side is this long (multiples of 32).
_DETECTOR_SIDE = 480
_PACKAGE = "rapidocr_onnxruntime"


class OcrUnavailableError(RuntimeError):
    """The OCR engine cannot be built: its package is missing or its models do not load."""


@dataclass(frozen=True)
class TextLine:
    """One line of text found on an image.

    Attributes:
        text: what it says.
        score: the recognizer's confidence in ``[0, 1]``.
        quad: ``float [4, 2]``, the line's corners ``x, y``.
        chars: per character ``(character, score, x, y)``, its center; neighbouring numerals
            read as one line are told apart by where each character lies.
    """

    text: str
    score: float
    quad: np.ndarray
    chars: tuple[tuple[str, float, float, float], ...]

    def mapped(self, homography: np.ndarray) -> TextLine:
        """The same line with its points sent through ``homography`` (``float [3, 3]``)."""
        quad = _apply(homography, self.quad)
        centers = _apply(homography, np.array([[c[2], c[3]] for c in self.chars]).reshape(-1, 2))
        chars = tuple(
            (c[0], c[1], float(x), float(y)) for c, (x, y) in zip(self.chars, centers, strict=True)
        )
        return TextLine(self.text, self.score, quad, chars)


def _apply(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(p) == 0:
        return p
    mapped = p @ homography[:2, :2].T + homography[:2, 2]
    return mapped / (p @ homography[2, :2] + homography[2, 2])[:, None]


class OcrEngine:
    """PP-OCRv4 text detection and recognition on the CPU, from the models in the wheel.

    Examples:
        >>> engine = OcrEngine(threads=1)  # doctest: +SKIP
        >>> [line.text for line in engine.read(face_rgb)]  # doctest: +SKIP
        ['0', '20', '40', 'MPa']
    """

    def __init__(
        self, threads: int = 1, detector_side: int = _DETECTOR_SIDE, turned_text: bool = False
    ) -> None:
        """Loads the models.

        Args:
            threads: onnxruntime's threads per model (``intra_op_num_threads``); at least 1.
            detector_side: the text detector's input, its longer side in pixels.
            turned_text: whether to turn text lines that read upside down (PP-OCR's
                180-degree classifier).

        Raises:
            ValueError: ``threads`` below 1.
            OcrUnavailableError: the package is not installed or its models do not load.
        """
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as error:
            raise OcrUnavailableError(
                f"{_PACKAGE} is not installed ({error}); `make venv` installs it "
                f"(the Makefile's RAPIDOCR pin)"
            ) from error
        options: dict[str, Any] = {
            "use_cls": turned_text,
            "det_limit_type": "max",
            "det_limit_side_len": detector_side,
            "text_score": 0.3,
        }
        for stage in ("det", "cls", "rec"):
            options[f"{stage}_intra_op_num_threads"] = threads
            options[f"{stage}_inter_op_num_threads"] = 1
        try:
            self._ocr = RapidOCR(**options)
        except Exception as error:  # onnxruntime raises its own types for unloadable models
            raise OcrUnavailableError(f"{_PACKAGE}'s models did not load: {error}") from error

    def read(self, image: np.ndarray) -> list[TextLine]:
        """Every line of text on ``image``.

        Args:
            image: ``uint8 [H, W, 3]``, RGB.

        Returns:
            The lines, in the image's pixels (continuous: a pixel's center at ``+0.5``).

        Raises:
            ValueError: ``image`` is not ``uint8 [H, W, 3]``.
        """
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"expected a uint8 [H, W, 3] RGB image, got {image.dtype} {image.shape}"
            )
        # The package takes OpenCV's BGR order.
        found, _ = self._ocr(np.ascontiguousarray(image[..., ::-1]), return_word_box=True)
        lines = []
        for quad, text, score, boxes, characters, scores in found or ():
            chars = tuple(
                (str(c), float(s), *(np.asarray(b, dtype=np.float64).mean(axis=0) + 0.5))
                for c, s, b in zip(characters, scores, boxes, strict=False)
            )
            lines.append(
                TextLine(str(text), float(score), np.asarray(quad, dtype=np.float64) + 0.5, chars)
            )
        return lines


def face_patch(image: np.ndarray, homography: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """The dial's face rectified: ``uint8 [size, size, 3]``, the outline its inscribed circle.

    Args:
        image: the photo, ``uint8 [H, W, 3]``.
        homography: ``float [3, 3]``, photo pixels to face coordinates (the outline the unit
            circle), as ``bls.meters.geometry.Face.homography``.
        size: the patch's side in pixels.
    """
    return cv2.warpPerspective(
        image,
        _face_to_patch(size) @ np.asarray(homography, dtype=np.float64),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _face_to_patch(size: int) -> np.ndarray:
    # Face (-1, -1) is the patch's top-left corner, (1, 1) its bottom-right one; a pixel's
    # center is at +0.5 (warpPerspective samples integer positions, hence the -0.5).
    half = size / 2
    return np.array([[half, 0, half - 0.5], [0, half, half - 0.5], [0, 0, 1.0]])


def read_faces(
    engine: OcrEngine,
    image: np.ndarray,
    homographies: Sequence[np.ndarray],
    size: int = FACE_SIZE,
) -> list[list[TextLine]]:
    """The text on each dial's rectified face, in face coordinates.

    Args:
        engine: the OCR engine.
        image: the photo, ``uint8 [H, W, 3]``, RGB.
        homographies: per dial ``float [3, 3]``, photo pixels to face coordinates.
        size: the side of the rectified face that is read, in pixels.

    Returns:
        Per dial its lines; points in face coordinates (the outline the unit circle).

    Raises:
        ValueError: a homography is not ``[3, 3]`` or not finite.
    """
    patch_to_face = np.linalg.inv(_face_to_patch(size))
    # Points come back with pixel centers at +0.5; the patch's own frame has them at integers.
    unshift = np.array([[1.0, 0, -0.5], [0, 1.0, -0.5], [0, 0, 1.0]])
    faces = []
    for k, homography in enumerate(homographies):
        h = np.asarray(homography, dtype=np.float64)
        if h.shape != (3, 3) or not np.all(np.isfinite(h)):
            raise ValueError(f"homography {k}: expected a finite [3, 3] matrix, got {h.shape}")
        lines = engine.read(face_patch(image, h, size))
        faces.append([line.mapped(patch_to_face @ unshift) for line in lines])
    return faces


def lines_to_json(faces: Sequence[Sequence[TextLine]]) -> str:
    """Per dial its lines as one JSON document (the ``ocr`` model's answer)."""
    return json.dumps(
        [
            [
                {
                    "text": line.text,
                    "score": round(line.score, 4),
                    "quad": [[round(float(v), 5) for v in p] for p in line.quad],
                    "chars": [
                        [c, round(s, 4), round(x, 5), round(y, 5)] for c, s, x, y in line.chars
                    ],
                }
                for line in lines
            ]
            for lines in faces
        ]
    )


def lines_from_json(document: str) -> list[list[TextLine]]:
    """The lines of :func:`lines_to_json`'s document.

    Raises:
        ValueError: the document is not a list of lists of lines.
    """
    try:
        parsed = json.loads(document)
        return [
            [
                TextLine(
                    str(item["text"]),
                    float(item["score"]),
                    np.asarray(item["quad"], dtype=np.float64).reshape(4, 2),
                    tuple((str(c), float(s), float(x), float(y)) for c, s, x, y in item["chars"]),
                )
                for item in lines
            ]
            for lines in parsed
        ]
    except (TypeError, KeyError, ValueError) as error:
        raise ValueError(f"not an OCR answer (a list per dial of text lines): {error}") from error
