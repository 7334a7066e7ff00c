"""The API's side of segmenting: decode and resize (worker threads), the runner, then masks and pictures.

Only decoded, resized uint8 arrays go to the runner, in runner-sized chunks that its batcher can merge
with other requests; a bad image fails only its own entry and never reaches a batch.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np

from nailseg import metrics
from nailseg.api import debug_outputs
from nailseg.api.answers import error_body, ms_since
from nailseg.api.runner_client import RunnerClient
from nailseg.api.schemas import (
    MaskRequest,
    ModelInfoBrief,
    SegmentBatchRequest,
    SegmentBatchResponse,
    SegmentOptions,
    SegmentResponse,
    TryOnRequest,
)
from nailseg.config import Settings
from nailseg.errors import ApiError, ErrorCode
from nailseg.images import pipeline
from nailseg.images.tryon import Polish
from nailseg.images.pipeline import PreparedImage
from nailseg.oip.types import InferRequest

log = logging.getLogger("unet.api")
Image = str | Path | bytes  # base64 text (the JSON APIs), an uploaded file (multipart), a photo (the protocol)


class Segmenter:
    def __init__(self, settings: Settings, runner: RunnerClient):
        self.settings = settings
        self.runner = runner

    @property
    def brief(self) -> ModelInfoBrief | None:
        s = self.runner.status
        if s is None or s.model is None:
            return None
        return ModelInfoBrief(model_variant=s.model.model_variant, device=s.device)

    def threshold(self, options: SegmentOptions | MaskRequest | TryOnRequest | InferRequest) -> float:
        return options.threshold if options.threshold is not None else self.settings.inference.threshold

    def _checked_threshold(self, options: SegmentOptions) -> float:
        if options.return_confidence and not self.settings.inference.enable_confidence:
            raise ApiError(ErrorCode.FEATURE_DISABLED, "confidence scores are disabled (inference.enable_confidence)")
        return self.threshold(options)

    async def _prepare_many(self, images: list[Image], max_total_pixels: int | None = None
                            ) -> list[PreparedImage | ApiError]:
        status = await self.runner.model_status()
        data = [im.read_bytes() if isinstance(im, Path) else im for im in images]
        with metrics.get().timed("decode"):
            return await asyncio.to_thread(pipeline.prepare_many, data, status.model.preprocessing,
                                           self.settings.limits.max_image_pixels, max_total_pixels)

    async def infer(self, prepared: list[PreparedImage]) -> list[np.ndarray]:
        """Probabilities for the prepared images, in runner-sized chunks that the batcher can merge."""
        step = self.settings.inference.batch_size
        chunks = [np.stack([p.model_input for p in prepared[i:i + step]]) for i in range(0, len(prepared), step)]
        with metrics.get().timed("runner"):
            results = await asyncio.gather(*(self.runner.call("infer", c) for c in chunks))
        return [prob for chunk in results for prob in chunk]

    @staticmethod
    async def off_loop(func, *args):
        """``func(*args)`` in a worker thread, off the event loop, timed as the `encode` stage (masks,
        pictures, answers)."""
        def timed():
            with metrics.get().timed("encode"):
                return func(*args)
        return await asyncio.to_thread(timed)

    def done(self, request_id: str, what: str, started: float, n: int = 1) -> None:
        """A request served: its log line and the images it segmented (unet_images_total)."""
        metrics.get().images.labels(what).inc(n)
        if self.settings.logging.log_requests:
            log.info("%s %s images=%d %.1fms", request_id, what, n, ms_since(started))

    async def _one(self, image: Image, threshold: float) -> tuple[PreparedImage, np.ndarray]:
        """One image through decode and the runner: (prepared image, model-size probabilities), kept for the
        debug outputs with the threshold its mask is cut at."""
        (prepared,) = await self._prepare_many([image])
        if isinstance(prepared, ApiError):
            raise prepared
        (prob,) = await self.infer([prepared])
        debug_outputs.keep([prepared], [prob], threshold)
        return prepared, prob

    async def segment(self, image: Image, options: SegmentOptions) -> SegmentResponse:
        cut = self._checked_threshold(options)
        prepared, prob = await self._one(image, cut)
        return SegmentResponse(**await self.off_loop(pipeline.segment_fields, prepared, prob, cut, options))

    async def mask_png(self, image: Image, options: MaskRequest) -> bytes:
        cut = self.threshold(options)
        prepared, prob = await self._one(image, cut)
        return await self.off_loop(pipeline.mask_picture, prepared, prob, cut, options.overlay)

    async def tryon(self, image: Image, options: TryOnRequest) -> bytes:
        cut = self.threshold(options)
        prepared, prob = await self._one(image, cut)
        polish = Polish.parse(options.color, options.opacity, options.finish)
        return await self.off_loop(pipeline.tryon_picture, prepared, prob, cut, polish, options.output_format)

    async def tensors(self, request: InferRequest) -> tuple[list[PreparedImage], list[np.ndarray], float]:
        """An Open Inference Protocol request's images through decode (photos) or resize (pixels) and the
        runner: (prepared images, model-size probabilities, the threshold to cut them at). A bad photo fails
        the whole request, naming its index."""
        cut = self.threshold(request)
        if request.images is not None:
            prepared = await self._prepare_many(request.images, self.settings.limits.max_batch_pixels)
            bad = next(((i, p) for i, p in enumerate(prepared) if isinstance(p, ApiError)), None)
            if bad is not None:
                raise ApiError(bad[1].code, f"image {bad[0]}: {bad[1].message}")
        else:
            prep = (await self.runner.model_status()).model.preprocessing
            prepared = [pipeline.prepare_pixels(px, prep) for px in request.pixels]
        probs = await self.infer(prepared)
        debug_outputs.keep(prepared, probs, cut, indexes=range(len(prepared)))  # photos only: pixels have none
        return prepared, probs, cut

    async def batch(self, request: SegmentBatchRequest, request_id: str, started: float) -> SegmentBatchResponse:
        limits = self.settings.limits
        if not self.settings.inference.enable_batch_processing:
            raise ApiError(ErrorCode.FEATURE_DISABLED, "batch processing is disabled (inference.enable_batch_processing)")
        if not request.images:
            raise ApiError(ErrorCode.EMPTY_BATCH, "images is empty; send at least one image")
        if len(request.images) > limits.max_batch_images:
            raise ApiError(ErrorCode.BATCH_TOO_LARGE,
                           f"{len(request.images)} images; the limit is {limits.max_batch_images} a request")
        cut = self._checked_threshold(request)
        prepared = await self._prepare_many([im.image_data for im in request.images], limits.max_batch_pixels)
        indexes = [i for i, p in enumerate(prepared) if not isinstance(p, ApiError)]
        good = [prepared[i] for i in indexes]
        good_probs = await self.infer(good) if good else []
        debug_outputs.keep(good, good_probs, cut, indexes=indexes)
        probs = iter(good_probs)

        def answers():
            return [error_body(p, started, request_id, self.brief, index=i) if isinstance(p, ApiError) else
                    SegmentResponse(**pipeline.segment_fields(p, next(probs), cut, request), request_id=request_id,
                                    model_info=self.brief)
                    for i, p in enumerate(prepared)]

        results = await self.off_loop(answers)
        elapsed = ms_since(started)
        for r in results:
            r.processing_time_ms = elapsed
        return SegmentBatchResponse(results=results, batch_size=len(results), total_processing_time_ms=elapsed,
                                    processing_time_ms=elapsed)
