"""A COCO instances file from the service's answers: pre-labels that CVAT, Label Studio and Roboflow import.

Each photo becomes an ``images`` entry with its size; each nail of its mask an annotation in the one
category ``nail``: its RLE (pycocotools' compressed form), bounding box, area and score (the model's mean
probability over the nail). The nails are those of nailseg/images/geometry.py, the same function that
makes the service's ``nails`` and outlines, so the annotations' union is the service's mask.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pybase64

from nailseg.images import geometry, maskformats

CATEGORY = {"id": 1, "name": "nail", "supercategory": "nail"}


@dataclass
class Labelled:
    """One photo's answer: its mask (0/255) and the service's nails (``return_nails``), largest first."""

    file_name: str
    mask: np.ndarray
    scores: list[float]


def mask_png(answer: dict) -> bytes:
    """The answer's mask as PNG bytes (what /mask returns for the same photo)."""
    return pybase64.b64decode(answer["mask_data"])


def from_answer(file_name: str, answer: dict) -> Labelled:
    """From a /segment-image answer asked with ``return_nails=true`` (mask_format png)."""
    png = np.frombuffer(mask_png(answer), np.uint8)
    mask = cv2.imdecode(png, cv2.IMREAD_GRAYSCALE)
    return Labelled(file_name, mask, [n["mean_probability"] for n in answer.get("nails") or []])


def annotations(labelled: Labelled, image_id: int, first_id: int) -> list[dict]:
    height, width = labelled.mask.shape
    found = sorted(geometry.nails(labelled.mask), key=lambda n: n.area, reverse=True)  # the service's order
    out = []
    for i, nail in enumerate(found):
        x, y, w, h = nail.box
        rle = maskformats.coco_rle_at(nail.region, x, y, height, width)
        out.append({"id": first_id + i, "image_id": image_id, "category_id": CATEGORY["id"],
                    "segmentation": {"size": list(rle.size), "counts": rle.counts}, "area": nail.area,
                    "bbox": [x, y, w, h], "iscrowd": 0,
                    "score": round(labelled.scores[i], 4) if i < len(labelled.scores) else None})
    return out


@dataclass
class CocoFile:
    description: str
    photos: list[Labelled] = field(default_factory=list)

    def document(self) -> dict:
        images, notes = [], []
        for image_id, photo in enumerate(sorted(self.photos, key=lambda p: p.file_name), start=1):
            height, width = photo.mask.shape
            images.append({"id": image_id, "file_name": photo.file_name, "width": width, "height": height})
            notes += annotations(photo, image_id, len(notes) + 1)
        return {"info": {"description": self.description, "version": "1.0",
                         "date_created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
                "licenses": [], "images": images, "annotations": notes, "categories": [CATEGORY]}


def write(path: Path, coco: CocoFile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco.document()))
