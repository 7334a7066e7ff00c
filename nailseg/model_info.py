"""What the model store records about an imported model (its metadata), shared by the store, the
runner and the API's responses without the API models depending on the store."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from nailseg.model import Architecture
from nailseg.preprocess import Preprocessing


class StoredModelInfo(BaseModel):
    """The metadata written with every imported model."""

    architecture: Architecture
    architecture_source: str
    model_variant: str
    parameters: int
    preprocessing: Preprocessing
    preprocessing_source: str  # "checkpoint" or "config.yaml"
    source_file: str
    source_sha256: str
    training: dict[str, Any] = {}
