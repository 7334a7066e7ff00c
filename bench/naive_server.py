"""The naive peer: what the guide's original server did. Each request on its own, eager fp32
PyTorch, PIL for decode/resize/encode, no batching, no buffers.

    python -m bench.naive_server --checkpoint FILE --port 8002
"""

from __future__ import annotations

import argparse
import base64
import io

import numpy as np
import torch
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nailseg.model.checkpoint import read_checkpoint


def build_app(checkpoint: str) -> Starlette:
    ckpt = read_checkpoint(checkpoint)
    model = ckpt.build_model()
    h, w = ckpt.preprocessing.image_size if ckpt.preprocessing else (256, 256)

    def segment_sync(data: dict) -> dict:
        image = Image.open(io.BytesIO(base64.b64decode(data["image_data"]))).convert("RGB")
        x = np.asarray(image.resize((w, h), Image.BILINEAR), np.float32) / 255.0
        with torch.no_grad():
            prob = model(torch.from_numpy(x).permute(2, 0, 1)[None])[0, 0].numpy()
        mask = Image.fromarray((prob >= data.get("threshold", 0.5)).astype(np.uint8) * 255).resize(image.size)
        buf = io.BytesIO()
        mask.save(buf, format="PNG")
        return {"success": True, "mask_data": base64.b64encode(buf.getvalue()).decode()}

    async def segment(request: Request) -> JSONResponse:
        from starlette.concurrency import run_in_threadpool

        return JSONResponse(await run_in_threadpool(segment_sync, await request.json()))

    return Starlette(routes=[Route("/api/unet/segment", segment, methods=["POST"])])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--port", type=int, default=8002)
    args = p.parse_args()
    uvicorn.run(build_app(args.checkpoint), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
