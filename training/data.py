"""The nails data set: split lists, loading at model size, and augmentation for hand photos."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from nailseg.images.pipeline import prepare_bytes
from nailseg.model.spec import Preprocessing

MAX_PIXELS = 100_000_000  # training photos are trusted; the service's own limit guards requests


@dataclass
class Sample:
    stem: str
    image_path: Path
    mask_path: Path


def read_split(data_dir: Path, split: str) -> list[Sample]:
    """Samples listed in ``splits/<split>.txt`` (one stem a line)."""
    stems = (data_dir / "splits" / f"{split}.txt").read_text().split()
    return [Sample(s, data_dir / "images" / f"{s}.jpg", data_dir / "masks" / f"{s}.png") for s in stems]


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{path}: cannot be read as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_mask(path: Path) -> np.ndarray:
    """Binary mask as uint8 0/1 at the file's own size."""
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise FileNotFoundError(f"{path}: cannot be read as a mask")
    return (m > 127).astype(np.uint8)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """0/1 mask to (h, w) by area-weighted resize and a 0.5 cut."""
    h, w = size
    if mask.shape == (h, w):
        return mask
    soft = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    return (soft >= 0.5).astype(np.uint8)


def load_at_size(samples: list[Sample], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """All images (N,H,W,3 uint8, decoded and resized by the service's own code) and masks (N,H,W 0/1)."""
    prep = Preprocessing(image_size=size)
    images = np.empty((len(samples), *size, 3), np.uint8)
    masks = np.empty((len(samples), *size), np.uint8)
    for i, s in enumerate(samples):
        images[i] = prepare_bytes(s.image_path.read_bytes(), prep, MAX_PIXELS).model_input
        masks[i] = resize_mask(read_mask(s.mask_path), size)
    return images, masks


@dataclass(frozen=True)
class AugmentStrength:
    """Ranges of the random transforms; ``full`` for training from scratch, ``light`` for a final fine-tune."""

    rotation_deg: float
    scale: tuple[float, float]
    shift: float
    contrast: float
    brightness: float
    saturation: float
    colour_cast: float
    blur_p: float


AugmentName = Literal["full", "wide", "light"]
AUGMENT: dict[str, AugmentStrength] = {
    "full": AugmentStrength(rotation_deg=30, scale=(0.75, 1.35), shift=0.1, contrast=0.3, brightness=30,
                            saturation=0.4, colour_cast=0.1, blur_p=0.25),
    # full, but zooming out to half size too: the small nails of wide shots
    "wide": AugmentStrength(rotation_deg=30, scale=(0.5, 1.35), shift=0.1, contrast=0.3, brightness=30,
                            saturation=0.4, colour_cast=0.1, blur_p=0.25),
    "light": AugmentStrength(rotation_deg=10, scale=(0.9, 1.1), shift=0.05, contrast=0.1, brightness=10,
                             saturation=0.1, colour_cast=0.03, blur_p=0.0),
}


class Augmenter:
    """Random flips, rotation, scale/crop, colour and brightness jitter, blur."""

    def __init__(self, seed: int | np.random.Generator = 0, strength: AugmentName = "full"):
        self.rng = np.random.default_rng(seed)
        self.s = AUGMENT[strength]

    def __call__(self, image: np.ndarray, mask: np.ndarray, soft: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The image, its mask and (if given) a soft target map, moved by one random transform."""
        r, s = self.rng, self.s
        h, w = mask.shape
        angle = r.uniform(-s.rotation_deg, s.rotation_deg)
        scale = math.exp(r.uniform(math.log(s.scale[0]), math.log(s.scale[1])))
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        m[:, 2] += r.uniform(-s.shift, s.shift, size=2) * (w, h)
        if r.random() < 0.5:  # horizontal flip folded into the affine map
            m[0] = -m[0]
            m[0, 2] += w
        if r.random() < 0.2:
            m[1] = -m[1]
            m[1, 2] += h
        image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
        if soft is not None:
            soft = cv2.warpAffine(soft, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

        img = image.astype(np.float32)
        img = img * r.uniform(1 - s.contrast, 1 + s.contrast) + r.uniform(-s.brightness, s.brightness)
        grey = img.mean(axis=2, keepdims=True)
        img = grey + (img - grey) * r.uniform(1 - s.saturation, 1 + s.saturation)
        img = img * r.uniform(1 - s.colour_cast, 1 + s.colour_cast, size=3)
        image = np.clip(img, 0, 255).astype(np.uint8)
        if r.random() < s.blur_p:
            k = int(r.choice([3, 5]))
            image = cv2.GaussianBlur(image, (k, k), 0)
        return image, mask, soft
