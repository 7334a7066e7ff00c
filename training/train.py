"""Train the AttentionUNet on a nails data set and write checkpoints in the users' format.

    python -m training.train --data ../shared/data/nails-roboflow --variant lightweight --out runs/lw
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn
from tqdm import tqdm

from nailseg.inference.hardware import cpu_has_fast_bf16
from nailseg.inference.normalize import to_tensor
from nailseg.model.checkpoint import read_checkpoint
from nailseg.model.spec import PRESETS, Architecture, Preprocessing
from nailseg.model.unet import AttentionUNet
from training.checkpoints import CheckpointWriter, checkpoint_payload
from training.data import Augmenter, AugmentName, load_at_size, read_split

log = logging.getLogger("training")

NAIL_PRIOR_LOGIT = -3.0  # logit of ~5%, the share of nail pixels in the data


class TrainConfig(BaseModel):
    data: Path
    out: Path
    variant: str = "lightweight"
    base_channels: int | None = None
    depth: int | None = None
    image_size: int = 256
    epochs: int = 20
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    dropout: float = 0.0
    seed: int = 0
    limit: int | None = None  # use only the first N train/valid images (smoke tests)
    max_steps: int | None = None  # stop each epoch after N steps (smoke tests)
    bf16: bool | None = None  # None: use bf16 autocast where the CPU has it, or on CUDA
    init_from: Path | None = None  # start from this checkpoint's weights (fine-tuning, longer runs)
    augment: AugmentName = "full"  # light: smaller transforms, for a last fine-tune

    def architecture(self) -> Architecture:
        preset = PRESETS[self.variant]
        return Architecture(
            base_channels=self.base_channels or preset.base_channels, depth=self.depth or preset.depth
        )


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE plus batch-pooled soft Dice: copes with nails being a few percent of the pixels."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    dice = (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)
    return bce + (1 - dice)


@torch.no_grad()
def validate(model: AttentionUNet, images: np.ndarray, masks: np.ndarray, prep: Preprocessing,
             device: torch.device, autocast) -> dict[str, float]:
    """Pooled Dice/IoU and loss at model resolution, threshold 0.5."""
    model.eval()
    inter = union_sum = pred_sum = true_sum = 0.0
    losses = []
    for i in range(0, len(images), 16):
        x = to_tensor(images[i:i + 16], prep).to(device)
        y = torch.from_numpy(masks[i:i + 16]).float().unsqueeze(1).to(device)
        with autocast():
            logits = model.forward_logits(x)
        losses.append(bce_dice_loss(logits.float(), y).item())
        pred = (logits.float() > 0).float()
        inter += (pred * y).sum().item()
        pred_sum += pred.sum().item()
        true_sum += y.sum().item()
        union_sum += ((pred + y) > 0).float().sum().item()
    return {
        "val_dice": 2 * inter / max(pred_sum + true_sum, 1),
        "val_iou": inter / max(union_sum, 1),
        "val_loss": float(np.mean(losses)),
    }


def train(cfg: TrainConfig) -> Path:
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    use_bf16 = cfg.bf16 if cfg.bf16 is not None else (device.type == "cuda" or cpu_has_fast_bf16())
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)  # noqa: E731
    size = (cfg.image_size, cfg.image_size)
    prep = Preprocessing(image_size=size)  # /255, as the users' pipeline trained (normalize_images: true)

    train_samples = read_split(cfg.data, "train")[: cfg.limit]
    valid_samples = read_split(cfg.data, "valid")[: cfg.limit]
    t0 = time.perf_counter()
    train_x, train_y = load_at_size(train_samples, size)
    valid_x, valid_y = load_at_size(valid_samples, size)
    log.info("loaded %d train / %d valid images at %s in %.1fs (device %s, bf16 %s)",
             len(train_x), len(valid_x), size, time.perf_counter() - t0, device, use_bf16)

    arch = cfg.architecture()
    model = AttentionUNet(arch, dropout=cfg.dropout)
    if cfg.init_from is not None:
        start = read_checkpoint(cfg.init_from)
        arch = start.architecture
        model = AttentionUNet(arch, dropout=cfg.dropout)
        model.load_state_dict(start.state_dict)
        log.info("starting from %s (%s)", cfg.init_from, start.training.get("metrics"))
    else:
        # Start the output at the nails' prior (~5% of pixels), not at p=0.5: with Adam's small steps the
        # bias alone would otherwise take thousands of steps to get there (measured: loss 1.04 vs 1.43
        # after 50 steps).
        nn.init.constant_(model.final_conv.bias, NAIL_PRIOR_LOGIT)
    model = model.to(device).to(memory_format=torch.channels_last)
    steps_per_epoch = len(train_x) // cfg.batch_size
    if cfg.max_steps:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=max(steps_per_epoch * cfg.epochs, 1), pct_start=0.1
    )
    ckpt_config = {
        **arch.model_dump(),
        "dropout": cfg.dropout,
        "image_size": list(size),
        "normalize_images": True,
        "variant": cfg.variant,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "loss": "bce+dice",
        "augment": cfg.augment,
        "seed": cfg.seed,
        "data": str(cfg.data),
        "init_from": str(cfg.init_from) if cfg.init_from else None,
    }
    writer = CheckpointWriter(cfg.out)
    augment = Augmenter(cfg.seed, cfg.augment)
    rng = np.random.default_rng(cfg.seed)
    best = -1.0
    started = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = rng.permutation(len(train_x))
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}", leave=False, mininterval=5)
        running = []
        for step in bar:
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            pairs = [augment(train_x[i], train_y[i]) for i in idx]
            x = to_tensor(np.stack([p[0] for p in pairs]), prep).to(device, memory_format=torch.channels_last)
            y = torch.from_numpy(np.stack([p[1] for p in pairs])).float().unsqueeze(1).to(device)
            with autocast():
                logits = model.forward_logits(x)
            loss = bce_dice_loss(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(running[-20:]):.4f}", refresh=False)  # redraw at mininterval only
        metrics = {"train_loss": float(np.mean(running)), **validate(model, valid_x, valid_y, prep, device, autocast)}
        is_best = metrics["val_dice"] > best
        best = max(best, metrics["val_dice"])
        writer.save_epoch(checkpoint_payload(model, ckpt_config, epoch, metrics, optimizer, scheduler), is_best)
        print(f"epoch {epoch}/{cfg.epochs}  train_loss {metrics['train_loss']:.4f}  val_loss {metrics['val_loss']:.4f}  "
              f"val_dice {metrics['val_dice']:.4f}  val_iou {metrics['val_iou']:.4f}  "
              f"elapsed {(time.perf_counter() - started) / 60:.1f} min{'  (best)' if is_best else ''}", flush=True)
    writer.save_final(checkpoint_payload(model, ckpt_config, cfg.epochs, metrics, optimizer, scheduler))
    print(f"done in {(time.perf_counter() - started) / 60:.1f} min; best val_dice {best:.4f}; checkpoints in {cfg.out}")
    return cfg.out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, field in TrainConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool or field.annotation == (bool | None):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            p.add_argument(flag, required=field.is_required(), default=field.default)
    args = {k: v for k, v in vars(p.parse_args(argv)).items() if v is not None}
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train(TrainConfig(**args))


if __name__ == "__main__":
    main()
