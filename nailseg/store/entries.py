"""The BentoML model store's ``unet`` entries: which exist, which a runner may serve. No torch here:
the API process and `bentoml serve`'s start-up check use it."""

from __future__ import annotations

import bentoml

MODEL_NAME = "unet"


def require_stored(tag: str = f"{MODEL_NAME}:latest") -> bentoml.Model:
    """The store entry, or a LookupError that says how to make one."""
    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as e:
        raise LookupError(f"{e}; import a checkpoint first: python -m models_import") from None


def candidates(pinned: str = "latest") -> list[bentoml.Model]:
    """The store entries a runner may serve, best first: the pinned tag alone, or every ``unet``
    version newest first (so a bad newest entry falls back to the one before it)."""
    if pinned != "latest":
        return [require_stored(f"{MODEL_NAME}:{pinned}")]
    try:
        models = bentoml.models.list(MODEL_NAME)
    except bentoml.exceptions.NotFound:
        models = []
    if not models:
        require_stored()  # raises the LookupError that says how to import one
    return sorted(models, key=lambda m: m.info.creation_time, reverse=True)


def find_imported(sha256: str) -> bentoml.Model | None:
    try:
        models = bentoml.models.list(MODEL_NAME)
    except bentoml.exceptions.NotFound:
        return None
    for model in models:
        if model.info.labels.get("source_sha256") == sha256:
            return model
    return None
