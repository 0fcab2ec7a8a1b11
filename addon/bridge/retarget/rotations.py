"""Batched rotation maths on numpy arrays: every function takes leading batch axes (frames, bones, ...).

Conventions, as in Blender: rotation matrices act on column vectors (``v' = R @ v``), quaternions are
(w, x, y, z) and unit length. Angles are radians.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-9


def dot(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Dot products along the last axis."""
    return np.einsum("...i,...i->...", first, second)


def cross(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cross products along the last axis (``np.cross`` costs several times more on the small batches of a live
    frame)."""
    out = np.empty(np.broadcast_shapes(first.shape, second.shape))
    a0, a1, a2 = first[..., 0], first[..., 1], first[..., 2]
    b0, b1, b2 = second[..., 0], second[..., 1], second[..., 2]
    out[..., 0] = a1 * b2 - a2 * b1
    out[..., 1] = a2 * b0 - a0 * b2
    out[..., 2] = a0 * b1 - a1 * b0
    return out


def normalize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit vectors, lengths) along the last axis; a zero vector stays zero (length 0)."""
    lengths = np.sqrt(dot(vectors, vectors))
    safe = np.where(lengths > EPSILON, lengths, 1.0)
    return vectors / safe[..., None], lengths


def any_perpendicular(vectors: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to each (unit) vector."""
    helper = np.zeros_like(vectors)
    use_x = np.abs(vectors[..., 0]) < 0.9
    helper[..., 0] = np.where(use_x, 1.0, 0.0)
    helper[..., 1] = np.where(use_x, 0.0, 1.0)
    return normalize(cross(vectors, helper))[0]


def skew(vectors: np.ndarray) -> np.ndarray:
    """The matrices (..., 3, 3) of ``v x`` (cross product with each vector)."""
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    out = np.zeros((*vectors.shape, 3))
    out[..., 0, 1], out[..., 0, 2] = -z, y
    out[..., 1, 0], out[..., 1, 2] = z, -x
    out[..., 2, 0], out[..., 2, 1] = -y, x
    return out


def axis_angle_matrix(axes: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) turning by ``angles`` (...) about unit ``axes`` (..., 3) (Rodrigues)."""
    cos = np.cos(angles)[..., None, None]
    sin = np.sin(angles)[..., None, None]
    outer = axes[..., :, None] * axes[..., None, :]
    return cos * np.eye(3) + sin * skew(axes) + (1.0 - cos) * outer


def rotation_between(sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The smallest rotations (..., 3, 3) turning unit ``sources`` into unit ``targets`` (the swing).

    Opposite vectors turn half a turn about some perpendicular axis.
    """
    axes = cross(sources, targets)
    cos = dot(sources, targets)
    opposite = cos < -1.0 + 1e-9
    # R = I + [v]x + [v]x^2 / (1 + cos), with v = source x target: no trigonometry, exact away from cos = -1.
    k = skew(axes)
    swing = np.eye(3) + k + (k @ k) / np.where(opposite, 1.0, 1.0 + cos)[..., None, None]
    if np.any(opposite):
        half_turn = axis_angle_matrix(any_perpendicular(sources), np.full(cos.shape, np.pi))
        swing = np.where(opposite[..., None, None], half_turn, swing)
    return swing


def signed_angle_about(first: np.ndarray, second: np.ndarray, axes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(angle, strength): the signed angle about unit ``axes`` from ``first`` to ``second`` once both are projected
    onto the plane perpendicular to the axis; ``strength`` is the smaller projected length (0 when either vector
    is nearly parallel to the axis and the angle means nothing)."""
    first_unit, first_length = normalize(first - dot(first, axes)[..., None] * axes)
    second_unit, second_length = normalize(second - dot(second, axes)[..., None] * axes)
    sin = dot(cross(first_unit, second_unit), axes)
    cos = dot(first_unit, second_unit)
    return np.arctan2(sin, cos), np.minimum(first_length, second_length)


def quat_from_matrix(matrices: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) with w >= 0 from rotation matrices (..., 3, 3) (Shepperd's method: of the four
    ways to read the quaternion off the matrix, each row is 4 * q * (one of its components); take the row whose
    component is largest, the best conditioned)."""
    m = matrices
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    rows = np.stack(
        [
            np.stack([1.0 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], axis=-1),
            np.stack([m21 - m12, 1.0 + m00 - m11 - m22, m01 + m10, m02 + m20], axis=-1),
            np.stack([m02 - m20, m01 + m10, 1.0 - m00 + m11 - m22, m12 + m21], axis=-1),
            np.stack([m10 - m01, m02 + m20, m12 + m21, 1.0 - m00 - m11 + m22], axis=-1),
        ],
        axis=-2,
    )  # (..., 4 rows, 4 components)
    pivots = np.stack([rows[..., i, i] for i in range(4)], axis=-1)
    best = np.argmax(pivots, axis=-1)
    chosen = np.take_along_axis(rows, best[..., None, None], axis=-2)[..., 0, :]
    quats = normalize(chosen)[0]
    return np.where(quats[..., :1] < 0.0, -quats, quats)


def matrix_from_quat(quats: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) from quaternions (..., 4) (normalised first)."""
    w, x, y, z = np.moveaxis(normalize(quats)[0], -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=-1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=-1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1),
        ],
        axis=-2,
    )


def quat_multiply(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Hamilton products ``first * second`` (apply ``second``, then ``first``)."""
    w1, x1, y1, z1 = np.moveaxis(first, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(second, -1, 0)
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        axis=-1,
    )


def quat_conjugate(quats: np.ndarray) -> np.ndarray:
    return quats * np.array([1.0, -1.0, -1.0, -1.0])


def slerp(first: np.ndarray, second: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Spherical interpolation between unit quaternions along the shorter arc; ``fractions`` (...) in 0..1."""
    dot = np.sum(first * second, axis=-1)
    second = np.where((dot < 0.0)[..., None], -second, second)
    dot = np.abs(dot)
    fractions = np.asarray(fractions, dtype=np.float64)[..., None]
    angle = np.arccos(np.clip(dot, -1.0, 1.0))[..., None]
    sin = np.sin(angle)
    near = sin < 1e-6
    safe_sin = np.where(near, 1.0, sin)
    weight_first = np.where(near, 1.0 - fractions, np.sin((1.0 - fractions) * angle) / safe_sin)
    weight_second = np.where(near, fractions, np.sin(fractions * angle) / safe_sin)
    return normalize(weight_first * first + weight_second * second)[0]


def fractional_rotation(quats: np.ndarray, fractions: np.ndarray | float) -> np.ndarray:
    """The rotation ``fraction`` of the way from identity to each quaternion (same axis, a share of the angle)."""
    identity = np.zeros_like(quats)
    identity[..., 0] = 1.0
    return slerp(identity, quats, np.broadcast_to(fractions, quats.shape[:-1]))


def rotation_angle(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The angle (radians) of the rotation taking matrices ``first`` to ``second`` (..., 3, 3)."""
    relative = np.swapaxes(first, -1, -2) @ second
    cos = (relative[..., 0, 0] + relative[..., 1, 1] + relative[..., 2, 2] - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


def orthonormalize(matrices: np.ndarray) -> np.ndarray:
    """The nearest rotation matrices (..., 3, 3) to ``matrices`` (drops scale and shear, as bone frames need)."""
    u, _, vt = np.linalg.svd(matrices)
    rotation = u @ vt
    flip = np.linalg.det(rotation) < 0
    if np.any(flip):
        u = u.copy()
        u[flip, :, -1] *= -1.0
        rotation = u @ vt
    return rotation
