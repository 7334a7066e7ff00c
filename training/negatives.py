"""Pictures with no nail in them, for training "no nails here": synthetic ones, crops of the hand photos away
from every nail, and nail-free photos (``training.nail_free_photos``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from training.data import read_rgb

FALSE_NAIL_SHARE = 0.001  # a nail-free picture "has nails" when more than 0.1% of its pixels are marked

# Colours a nail-free picture is likely to hold and a model likely to mistake: skin, polish, greys, wood.
CONFUSING_COLOURS = np.array([
    (224, 172, 150), (198, 134, 110), (141, 85, 60), (255, 219, 200), (200, 20, 60), (230, 120, 150),
    (250, 240, 235), (128, 128, 128), (60, 60, 60), (235, 235, 235), (160, 110, 70), (90, 140, 200),
], np.float32)


def _colour(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        return np.clip(CONFUSING_COLOURS[rng.integers(len(CONFUSING_COLOURS))] + rng.normal(0, 12, 3), 0, 255)
    return rng.uniform(0, 255, 3).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a random grid upsampled smoothly."""
    grid = rng.random((cells, cells, 1)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)[..., None]


def synthetic(rng: np.random.Generator, size: int) -> np.ndarray:
    """One synthetic nail-free picture (size x size RGB uint8): a flat colour, a gradient, noise, a texture, or
    shapes (ellipses too, nail-coloured ones included) over one of those."""
    kind = rng.integers(6)
    a, b = _colour(rng), _colour(rng)
    if kind == 0:  # flat
        img = np.broadcast_to(a, (size, size, 3)).copy()
    elif kind == 1:  # linear or radial gradient
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        if rng.random() < 0.5:
            angle = rng.uniform(0, np.pi)
            t = (np.cos(angle) * xx + np.sin(angle) * yy)
        else:
            cy, cx = rng.random(2)
            t = np.hypot(yy - cy, xx - cx)
        t = ((t - t.min()) / max(t.max() - t.min(), 1e-6))[..., None]
        img = a * (1 - t) + b * t
    elif kind == 2:  # noise: white, or smooth at a random scale
        if rng.random() < 0.4:
            img = rng.normal(a, rng.uniform(5, 80), (size, size, 3))
        else:
            t = _smooth_noise(rng, size, int(rng.integers(3, 40)))
            img = a * (1 - t) + b * t
    elif kind == 3:  # stripes or checks
        period = int(rng.integers(4, size // 3))
        yy, xx = np.mgrid[0:size, 0:size]
        t = ((xx // period) % 2 if rng.random() < 0.5 else ((xx // period) + (yy // period)) % 2)
        img = np.where(t[..., None] == 1, a, b).astype(np.float32)
        img = cv2.warpAffine(img, cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(0, 180), 1.5),
                             (size, size), borderMode=cv2.BORDER_REFLECT_101)
    else:  # shapes over a flat, gradient or noisy background
        img = synthetic(rng, size).astype(np.float32) if kind == 5 else np.broadcast_to(a, (size, size, 3)).copy()
        img = np.ascontiguousarray(img)
        for _ in range(int(rng.integers(1, 12))):
            colour = tuple(float(c) for c in _colour(rng))
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            if rng.random() < 0.6:
                axes = tuple(int(v) for v in rng.integers(3, size // 4, 2))
                cv2.ellipse(img, centre, axes, rng.uniform(0, 180), 0, 360, colour, -1, cv2.LINE_AA)
            else:
                pts = rng.integers(0, size, (int(rng.integers(3, 7)), 2)).astype(np.int32)
                cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
    if rng.random() < 0.3:
        k = int(rng.choice([3, 5, 9]))
        img = cv2.GaussianBlur(np.asarray(img, np.float32), (k, k), 0)
    return np.clip(img, 0, 255).astype(np.uint8)


def nail_free_crop(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, size: int,
                   tries: int = 20) -> np.ndarray | None:
    """A square crop of a hand photo that holds no nail (nor any within a few pixels of its edge), at a random
    scale, resized to size x size; None if none was found in ``tries``."""
    h, w = mask.shape
    near = cv2.dilate(mask, np.ones((9, 9), np.uint8))
    integral = cv2.integral(near)
    for _ in range(tries):
        side = int(min(h, w) * rng.uniform(0.15, 0.55))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        inside = integral[y + side, x + side] - integral[y, x + side] - integral[y + side, x] + integral[y, x]
        if inside == 0:
            return cv2.resize(image[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
    return None


def photo_crop(rng: np.random.Generator, image: np.ndarray, size: int) -> np.ndarray:
    """A random square crop of a nail-free photo (a third of it up to all of its shorter side), at size x size."""
    h, w = image.shape[:2]
    side = int(min(h, w) * rng.uniform(0.35, 1.0))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(image[y:y + side, x:x + side], (size, size), interpolation=interp)


def read_photos(folder: Path | None) -> list[np.ndarray]:
    """Every JPEG/PNG in ``folder`` as RGB (none when the folder is None or missing)."""
    if folder is None or not folder.is_dir():
        return []
    return [read_rgb(p) for p in sorted(folder.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]


class NegativeSampler:
    """Draws nail-free training pictures: the data set's empty-mask photos, crops of hand photos away from the
    nails, nail-free photos and synthetic pictures, in the proportions of ``weights`` (a missing source's share
    goes to the others)."""

    def __init__(self, rng: np.random.Generator, size: int, empty_photos: np.ndarray,
                 hand_photos: list[tuple[np.ndarray, np.ndarray]], free_photos: list[np.ndarray],
                 weights: dict[str, float] | None = None):
        self.rng, self.size = rng, size
        self.empty_photos, self.hand_photos, self.free_photos = empty_photos, hand_photos, free_photos
        weights = weights or {"empty": 0.2, "crop": 0.25, "photo": 0.35, "synthetic": 0.2}
        have = {"empty": len(empty_photos) > 0, "crop": len(hand_photos) > 0, "photo": len(free_photos) > 0,
                "synthetic": True}
        kinds = [k for k in weights if have[k]]
        total = sum(weights[k] for k in kinds)
        self.kinds = kinds
        self.p = np.array([weights[k] / total for k in kinds])

    def __call__(self) -> np.ndarray:
        kind = self.kinds[int(self.rng.choice(len(self.kinds), p=self.p))]
        if kind == "empty":
            return self.empty_photos[int(self.rng.integers(len(self.empty_photos)))]
        if kind == "crop":
            image, mask = self.hand_photos[int(self.rng.integers(len(self.hand_photos)))]
            crop = nail_free_crop(self.rng, image, mask, self.size)
            if crop is not None:
                return crop
        if kind == "photo":
            return photo_crop(self.rng, self.free_photos[int(self.rng.integers(len(self.free_photos)))], self.size)
        return synthetic(self.rng, self.size)
