"""A dial's face made round again: its outline's ellipse and the map from photo to face.

A round face photographed at an angle is an ellipse in the photo, and under perspective its
center (the needle's pivot) is not the ellipse's center. Given the pivot, the face is rectified
exactly: the polar of the pivot with respect to the outline's conic is the face plane's vanishing
line; the homography that sends it to infinity (and fixes the pivot) leaves an ellipse centered on
the pivot, and the linear map that makes that ellipse the unit circle finishes the job. Without
the pivot, the affine map that makes the ellipse a circle about its own center is the fallback:
exact for a face seen from afar, off by the perspective shift of the center otherwise.

A rectification is fixed only up to a rotation. Both maps here turn the face the least they can:
their Jacobian at the face's center is symmetric (a pure stretch, no turn). A camera that tilts
about any axis in the face's plane without rolling sees exactly that, so face angles compare with
a scale's angles as printed (clockwise from 12 o'clock); it is what ``training.gauges`` draws.

Coordinates are detectron2's continuous pixels: the mask pixel in column ``i``, row ``j`` covers
``[i, i + 1) x [j, j + 1)``, its center at ``(i + 0.5, j + 0.5)`` (:data:`PIXEL_CENTER`), the frame
keypoints and boxes are in. Angles are clockwise from 12 o'clock, degrees in ``[0, 360)``, y down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "PIXEL_CENTER",
    "Ellipse",
    "Face",
    "affine_face",
    "clockwise",
    "clockwise_angle",
    "fit_ellipse",
    "needle_line",
    "outline_points",
    "perspective_face",
]

# Where a mask pixel's center lies in the keypoints' frame, from its column and row indices
# (detectron2 pastes masks with pixel centers at +0.5).
PIXEL_CENTER = 0.5
_MIN_NEEDLE_PIXELS = 6


@dataclass(frozen=True, eq=False)
class Ellipse:
    """An ellipse ``(p - center)^T shape (p - center) = 1`` in photo pixels.

    Attributes:
        center: ``float [2]``, ``x, y``.
        shape: ``float [2, 2]``, symmetric positive definite.
    """

    center: np.ndarray
    shape: np.ndarray

    @property
    def semi_axes(self) -> tuple[float, float]:
        """``(major, minor)`` semi-axis lengths in pixels."""
        eigenvalues = np.linalg.eigvalsh(self.shape)
        return float(1 / math.sqrt(eigenvalues[0])), float(1 / math.sqrt(eigenvalues[1]))

    def rectifier(self) -> np.ndarray:
        """``float [2, 2]``: the symmetric linear map taking the ellipse to a circle of its major
        radius (it stretches the minor axis and leaves the major one alone)."""
        eigenvalues, vectors = np.linalg.eigh(self.shape)
        major = 1 / math.sqrt(eigenvalues[0])
        return vectors @ np.diag(np.sqrt(eigenvalues) * major) @ vectors.T

    def normalized_radius(self, points: np.ndarray) -> np.ndarray:
        """``float [N]``: 1 on the ellipse, below 1 inside, for ``points`` ``[N, 2]``."""
        d = np.asarray(points, dtype=np.float64) - self.center
        return np.sqrt(np.einsum("ni,ij,nj->n", d, self.shape, d))

    def conic(self) -> np.ndarray:
        """``float [3, 3]``: the symmetric ``C`` with ``p^T C p = 0`` on the ellipse and ``< 0``
        inside, ``p = (x, y, 1)``."""
        q, m = self.shape, self.center
        qm = q @ m
        return np.block([[q, -qm[:, None]], [-qm[None, :], np.array([[m @ qm - 1.0]])]])

    def residual(self, points: np.ndarray) -> float:
        """RMS distance of ``points`` from the ellipse, in shares of its major semi-axis (0 for
        a perfect outline); the minor axis's share is scaled to the major's."""
        if len(points) == 0:
            return 0.0
        r = self.normalized_radius(points)
        return float(np.sqrt(np.mean((r - 1.0) ** 2)))


def fit_ellipse(points: np.ndarray) -> Ellipse | None:
    """Least-squares ellipse through outline points.

    Fits the conic ``a x^2 + b xy + c y^2 + d x + e y = 1`` to the points, centered and scaled
    first so the fit is well conditioned.

    Args:
        points: ``float [N, 2]``, ``x, y``; at least 5.

    Returns:
        The ellipse, or ``None`` when the points do not describe one.
    """
    if len(points) < 5:
        return None
    mean = points.mean(axis=0)
    scale = float(np.sqrt(((points - mean) ** 2).sum(axis=1).mean()))
    if scale == 0:
        return None
    x, y = ((points - mean) / scale).T
    design = np.stack([x * x, x * y, y * y, x, y], axis=1)
    (a, b, c, d, e), *_ = np.linalg.lstsq(design, np.ones(len(points)), rcond=None)
    quadratic = np.array([[a, b / 2], [b / 2, c]])
    if np.linalg.det(quadratic) <= 0:
        return None
    center = np.linalg.solve(2 * quadratic, -np.array([d, e]))
    level = 1 + center @ quadratic @ center
    if level <= 0 or np.any(np.linalg.eigvalsh(quadratic) <= 0):
        return None
    return Ellipse(center=center * scale + mean, shape=quadratic / level / scale**2)


def outline_points(mask: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    """``float [N, 2]``: the mask's outer outline in photo pixels, on the mask's edge.

    The outline pixels' centers lie half a pixel inside the edge on average; the points are
    moved out by that half pixel along the outline's normal, so a fitted ellipse is the mask's
    edge and not a slightly smaller one (under perspective a smaller one is not concentric on the
    face, and would move the vanishing line).
    """
    padded = np.pad(np.asarray(mask) != 0, 1).astype(np.uint8)
    contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return np.zeros((0, 2))
    outline = max(contours, key=cv2.contourArea)[:, 0, :].astype(np.float64)
    # Normals from the neighbours two steps along the closed outline (the outline runs one way
    # round, so the rotated tangent points out or in the same way everywhere; the sign is taken
    # from the centroid).
    if len(outline) >= 5:
        tangent = np.roll(outline, -2, axis=0) - np.roll(outline, 2, axis=0)
        normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
        length = np.linalg.norm(normal, axis=1, keepdims=True)
        normal = np.divide(normal, length, out=np.zeros_like(normal), where=length > 0)
        if np.sum(normal * (outline - outline.mean(axis=0))) < 0:
            normal = -normal
        outline = outline + 0.5 * normal
    # -1 undoes the padding.
    return outline + np.asarray(origin, dtype=np.float64) - 1 + PIXEL_CENTER


@dataclass(frozen=True, eq=False)
class Face:
    """The map from photo pixels to a dial's rectified face.

    On the face the dial's outline is the unit circle about the origin, the needle's pivot is
    the origin (for an affine face: the ellipse's center), and angles are face angles.

    Attributes:
        homography: ``float [3, 3]``, photo ``(x, y, 1)`` to face.
        center: the face's origin in photo pixels.
        projective: whether the map is the exact perspective one (a pivot was given).
        minor_direction: ``float [2]``, the ellipse's minor axis on the face (for an affine
            face, where the true pivot lies along it).
        tilt_share: ``sqrt(1 - (minor / major)^2)``, the sine of the face's tilt as the
            ellipse's axis ratio tells it.
    """

    homography: np.ndarray
    center: tuple[float, float]
    projective: bool
    minor_direction: np.ndarray
    tilt_share: float

    def to_face(self, points: np.ndarray) -> np.ndarray:
        """``float [N, 2]``: photo points ``[N, 2]`` on the face."""
        return _apply(self.homography, points)

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """``float [N, 2]``: face points ``[N, 2]`` in the photo."""
        return _apply(np.linalg.inv(self.homography), points)

    def area_weights(self, points: np.ndarray) -> np.ndarray:
        """``float [N]``: each photo point's pixel area on the face, relative to the others'.

        A homography magnifies the far side of a tilted face: a mask's pixels there cover less
        of the face than near ones, and moments on the face weight them by that.
        """
        w = np.asarray(points, dtype=np.float64) @ self.homography[2, :2] + self.homography[2, 2]
        return 1.0 / np.abs(w) ** 3


def _apply(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    mapped = p @ homography[:2, :2].T + homography[:2, 2]
    w = p @ homography[2, :2] + homography[2, 2]
    return mapped / w[:, None]


def affine_face(ellipse: Ellipse) -> Face:
    """The face as the affine map that makes the ellipse the unit circle about its center."""
    major, minor = ellipse.semi_axes
    linear = ellipse.rectifier() / major
    homography = np.eye(3)
    homography[:2, :2] = linear
    homography[:2, 2] = -linear @ ellipse.center
    return Face(
        homography=homography,
        center=(float(ellipse.center[0]), float(ellipse.center[1])),
        projective=False,
        minor_direction=np.linalg.eigh(ellipse.shape)[1][:, 1],
        tilt_share=math.sqrt(max(0.0, 1 - (minor / major) ** 2)),
    )


def perspective_face(ellipse: Ellipse, pivot: tuple[float, float]) -> Face | None:
    """The face rectified exactly under perspective, given the needle's pivot in the photo.

    Args:
        ellipse: the dial's outline.
        pivot: the face's true center in photo pixels.

    Returns:
        The face, or ``None`` when the pivot does not lie inside the ellipse (then no plane
        seen from the camera's side has that outline and that center).
    """
    major, minor = ellipse.semi_axes
    cx, cy = float(pivot[0]), float(pivot[1])
    # Pivot to the origin, the major semi-axis to 1: the solve below is then well conditioned.
    normalize = np.array([[1 / major, 0, -cx / major], [0, 1 / major, -cy / major], [0, 0, 1]])
    inverse = np.linalg.inv(normalize)
    conic = inverse.T @ ellipse.conic() @ inverse
    vanishing = conic[:, 2]  # the pivot's polar: C (0, 0, 1)
    if vanishing[2] >= 0:  # p^T C p >= 0: the pivot is on or outside the outline
        return None
    # Sends the vanishing line to infinity, fixes the origin, and is the identity there.
    to_infinity = np.eye(3)
    to_infinity[2] = vanishing / vanishing[2]
    back = np.linalg.inv(to_infinity)
    centered = back.T @ conic @ back
    # The outline is now an ellipse about the origin: x^T A x = 1 with A below.
    quadratic = (centered[:2, :2] + centered[:2, :2].T) / 2 / -centered[2, 2]
    eigenvalues, vectors = np.linalg.eigh(quadratic)
    if np.any(eigenvalues <= 0):
        return None
    stretch = vectors @ np.diag(np.sqrt(eigenvalues)) @ vectors.T
    homography = np.eye(3)
    homography[:2, :2] = stretch
    homography = homography @ to_infinity @ normalize
    return Face(
        homography=homography / homography[2, 2],
        center=(cx, cy),
        projective=True,
        minor_direction=vectors[:, 1],
        tilt_share=math.sqrt(max(0.0, 1 - (minor / major) ** 2)),
    )


def needle_line(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A needle's line on the face: ``(a point on it, unit direction)``, from second moments.

    A needle is symmetric about its line, so its long principal axis is that line; moments
    over all its pixels average out the steps of the rasterized edge. Call it on points of the
    rectified face: a tilt shears the needle, and a sheared needle's principal axis is not its
    line.

    Args:
        points: ``float [N, 2]``, the needle's pixels on the face.
        weights: ``float [N]``, each pixel's area on the face.

    Returns:
        The line, or ``None`` for too few pixels or a round blob (no direction).
    """
    if len(points) < _MIN_NEEDLE_PIXELS:
        return None
    w = weights / weights.sum()
    mean = w @ points
    d = points - mean
    covariance = (d * w[:, None]).T @ d
    eigenvalues, vectors = np.linalg.eigh(covariance)
    if eigenvalues[1] <= eigenvalues[0]:
        return None
    return mean, vectors[:, 1]


def clockwise_angle(direction: np.ndarray) -> float:
    """The direction's angle clockwise from 12 o'clock, y down, in ``[0, 360)``."""
    angle = math.degrees(math.atan2(direction[0], -direction[1])) % 360.0
    return 0.0 if angle == 360.0 else angle


def clockwise(from_deg: float, to_deg: float) -> float:
    """How far clockwise ``to_deg`` lies from ``from_deg``, in ``[0, 360)``."""
    turn = (to_deg - from_deg) % 360.0
    return 0.0 if turn == 360.0 else turn
