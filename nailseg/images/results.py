"""What the image pipeline makes of a probability map, as typed values: confidences, outlines, COCO RLE,
pictures. The API's answers (nailseg.api.schemas) are built from these."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

MaskFormat = Literal["png", "coco_rle", "polygons"]


class ConfidenceScores(BaseModel):
    overall_mean: float
    mask_mean: float
    background_mean: float


class BoundingBox(BaseModel):
    x: int
    y: int
    width: int
    height: int


class Contour(BaseModel):
    points: list[tuple[int, int]]
    area: float
    bounding_box: BoundingBox


class PrincipalAxis(BaseModel):
    """The nail's long axis, from its mask's second moments (nailseg/images/geometry.py)."""

    angle: float = Field(description="degrees from the image's +x axis toward +y (clockwise on screen), "
                         "in (-90, 90]")
    length: float = Field(description="pixels along the axis: the full major axis of the ellipse with the "
                          "same second moments")
    width: float = Field(description="pixels across: that ellipse's full minor axis")


class NailGeometry(BaseModel):
    area: int = Field(description="the nail's mask pixels")
    bounding_box: BoundingBox
    centroid: tuple[float, float] = Field(description="[x, y] in pixels")
    outline: list[tuple[int, int]] = Field(description="the outer outline's points [x, y], as in contours")
    principal_axis: PrincipalAxis
    mean_probability: float = Field(description="the model's mean nail probability over the nail's pixels")


class CocoRle(BaseModel):
    """A COCO compressed RLE: ``pycocotools.mask.decode(rle)`` gives the (h, w) mask (1 = nail)."""

    size: tuple[int, int] = Field(description="[height, width]")
    counts: str = Field(description="column-major run lengths (background first), in COCO's compressed string form")


class Visualizations(BaseModel):
    overlay: str = Field(description="base64 PNG: the photo with the mask tinted over it")
    heatmap: str = Field(description="base64 PNG: nail probability as a colour map")
