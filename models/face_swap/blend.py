"""Putting a generated face crop back into its frame: feathered mask, mouth mask, colour correction, paste-back.

A face model works on an aligned square crop: a 2x3 affine ``M`` maps frame pixels to crop pixels. These
functions build the blending mask in crop space, correct the crop's colours against the original crop, and warp
both back into the frame, touching only the pixels the mask covers. Every pixel where the mask is zero, which
includes everything outside the warped crop, keeps its exact original value.

Masks are float32 in 0..1, images RGB uint8. OpenCV is imported inside the functions.
"""

from __future__ import annotations

import math

import numpy as np

MASK_EPSILON = 1.0 / 512.0
"""Mask values below this are set to exactly zero: they could not change an 8-bit pixel, and a true zero is what
guarantees the pixel is left as it was."""


def crop_mask(size: int, feather: float) -> np.ndarray:
    """The blending mask of a ``size`` x ``size`` face crop: 1 in the middle, falling smoothly to exactly 0 over
    a band of ``feather`` x ``size`` pixels at each edge (``feather`` in 0..0.5; 0 gives a hard edge 2 pixels in
    from the crop's border)."""
    import cv2

    band = max(2, round(feather * size))
    inner = band if feather > 0 else 2
    mask = np.zeros((size, size), np.float32)
    mask[inner : size - inner, inner : size - inner] = 1.0
    if feather > 0:
        # The blur spreads the square's edge over about the band's width; the square was shrunk by the band, so
        # the mask still reaches zero before the crop's border, where the warp would otherwise show a seam.
        sigma = band / 3.0
        mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)
        mask /= max(float(mask.max()), 1e-6)
    mask[mask < MASK_EPSILON] = 0.0
    mask[:2, :] = mask[-2:, :] = mask[:, :2] = mask[:, -2:] = 0.0
    return mask


def mouth_mask(lip_contour: np.ndarray, size: int, grow: float = 0.03, soften: float = 0.03) -> np.ndarray:
    """A soft mask (1 inside) of the mouth in a ``size`` x ``size`` crop, from the outer lip contour
    ``lip_contour`` (N, 2) in crop pixels, grown by ``grow`` x ``size`` pixels and softened over ``soften`` x
    ``size``. Subtracted from the face mask it keeps the target's own mouth (teeth, tongue, lip sync)."""
    import cv2

    mask = np.zeros((size, size), np.float32)
    cv2.fillPoly(mask, [np.round(lip_contour).astype(np.int32)], 1.0)
    grow_px = max(1, round(grow * size))
    grown = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow_px + 1, 2 * grow_px + 1)))
    sigma = max(0.5, soften * size / 3.0)
    soft = cv2.GaussianBlur(grown, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return np.clip(soft, 0.0, 1.0).astype(np.float32)


def transfer_colour(crop: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``crop`` with the colour statistics of ``reference`` (both RGB uint8, same size) where ``mask`` > 0.5:
    each channel of CIE L*a*b* shifted and scaled to the reference's mean and standard deviation (Reinhard's
    transfer). The swapped face then takes the lighting and skin tone of the face it replaces."""
    import cv2

    region = mask > 0.5
    if region.sum() < 16:
        return crop
    source = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float32)
    target = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float32)
    source_mean, source_std = source[region].mean(axis=0), source[region].std(axis=0)
    target_mean, target_std = target[region].mean(axis=0), target[region].std(axis=0)
    scale = target_std / np.maximum(source_std, 1.0)
    corrected = (source - source_mean) * scale + target_mean
    return cv2.cvtColor(np.clip(np.round(corrected), 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def paste_back(
    frame: np.ndarray, crop: np.ndarray, matrix: np.ndarray, mask: np.ndarray, strength: float = 1.0
) -> tuple[int, int, int, int] | None:
    """Blend ``crop`` (RGB uint8, square) into ``frame`` (RGB uint8, changed in place) where ``matrix`` (2x3,
    frame -> crop pixels) puts it, weighted by ``mask`` x ``strength``.

    Only the bounding box of the warped crop is warped and blended, so the cost follows the face's size, not
    the frame's. Pixels whose weight is zero are not written. Returns the (x1, y1, x2, y2) box, end exclusive, of
    the region that may have changed, or None when the crop lies outside the frame.
    """
    import cv2

    height, width = frame.shape[:2]
    size = crop.shape[0]
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64) @ inverse.T
    x1 = max(0, math.floor(corners[:, 0].min()))
    y1 = max(0, math.floor(corners[:, 1].min()))
    x2 = min(width, math.ceil(corners[:, 0].max()) + 1)
    y2 = min(height, math.ceil(corners[:, 1].max()) + 1)
    if x1 >= x2 or y1 >= y2:
        return None
    local = np.array(inverse, dtype=np.float64)
    local[:, 2] -= (x1, y1)
    region = (x2 - x1, y2 - y1)
    warped = cv2.warpAffine(crop, local, region, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    weight = cv2.warpAffine(mask * strength, local, region, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    weight[weight < MASK_EPSILON] = 0.0
    covered = weight > 0
    if not covered.any():
        return None
    roi = frame[y1:y2, x1:x2]
    alpha = weight[covered][:, None]
    blended = roi[covered].astype(np.float32) * (1.0 - alpha) + warped[covered].astype(np.float32) * alpha
    roi[covered] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return x1, y1, x2, y2
