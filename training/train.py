"""Train the AttentionUNet on a nails data set and write checkpoints in the users' format.

    python -m training.train --data ../shared/data/nails-roboflow --variant lightweight --out runs/lw
    python -m training.train ... --out runs/lw --resume   # goes on where a stopped run left off
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
from nailseg.model.checkpoint import file_sha256, read_checkpoint
from nailseg.model.spec import PRESETS, Architecture, Preprocessing
from nailseg.model.unet import AttentionUNet
from training.checkpoints import CheckpointWriter, checkpoint_payload
from training.data import Augmenter, AugmentName, load_at_size, read_mask, read_rgb, read_split
from training.negatives import FALSE_NAIL_SHARE, NegativeSampler, read_photos, synthetic

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
    augment: AugmentName = "full"  # light: smaller transforms, for a last fine-tune; wide: zooms out further
    negative_share: float = 0.0  # this share of each batch is nail-free pictures (training.negatives)
    nail_free: Path | None = None  # a folder of nail-free photos for them (python -m training.nail_free_photos)
    teacher: Path | None = None  # distil this checkpoint's flip-averaged probabilities ...
    distill_weight: float = 0.5  # ... as this share of each target, the label the rest
    resume: bool = False  # go on from OUT/resume.pth where a stopped run left it
    save_every: int = 100  # steps between resume states within an epoch (one is also written after each)
    stop_after: int | None = None  # stop after this many steps in this sitting (state saved: --resume goes on)

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


NEGATIVE_TOP_FRACTION = 0.01  # a nail-free picture's loss also looks at its most nail-like 1% of pixels


def training_loss(logits: torch.Tensor, target: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """BCE + pooled Dice over the batch, plus BCE towards 0 of each nail-free picture's top 1% logits: a small
    false blob is a few pixels in the pooled terms, but all of this one."""
    loss = bce_dice_loss(logits, target)
    if bool(negative.any()):
        flat = logits[negative].flatten(1)
        top = flat.topk(max(1, int(flat.shape[1] * NEGATIVE_TOP_FRACTION)), dim=1).values
        loss = loss + F.binary_cross_entropy_with_logits(top, torch.zeros_like(top))
    return loss


@torch.no_grad()
def false_nail_rate(model: AttentionUNet, images: np.ndarray, prep: Preprocessing, device: torch.device,
                    autocast) -> float:
    """Share of nail-free pictures with more than 0.1% of their pixels marked at threshold 0.5."""
    model.eval()
    marked = 0
    for i in range(0, len(images), 16):
        with autocast():
            logits = model.forward_logits(to_tensor(images[i:i + 16], prep).to(device)).float()
        marked += int(((logits > 0).float().mean(dim=(1, 2, 3)) > FALSE_NAIL_SHARE).sum())
    return marked / max(len(images), 1)


@torch.no_grad()
def teacher_maps(teacher: Path, images: np.ndarray, prep: Preprocessing, device: torch.device, autocast,
                 cache: Path) -> np.ndarray:
    """The teacher's flip-averaged nail probability for each training image (N, H, W float32 in [0, 1]), kept in
    ``cache`` as uint8 so a resumed run does not recompute it."""
    if cache.exists():
        return np.load(cache).astype(np.float32) / 255
    model = read_checkpoint(teacher).build_model().to(device).to(memory_format=torch.channels_last)
    out = np.empty(images.shape[:3], np.uint8)
    for i in range(0, len(images), 16):
        x = to_tensor(images[i:i + 16], prep).to(device, memory_format=torch.channels_last)
        with autocast():
            p = (torch.sigmoid(model.forward_logits(x).float())
                 + torch.sigmoid(model.forward_logits(x.flip(3)).float()).flip(3)) / 2
        out[i:i + 16] = (p[:, 0].cpu().numpy() * 255).round().astype(np.uint8)
    np.save(cache, out)
    return out.astype(np.float32) / 255


class RunState:
    """Everything a stopped run needs to go on where it stopped: weights, optimiser, schedule, the epoch and step,
    this epoch's data order, every random generator, the best score and the checkpoint history."""

    FILE = "resume.pth"

    @staticmethod
    def save(out: Path, *, model, optimizer, scheduler, epoch: int, step: int, order: np.ndarray, losses: list[float],
             generators: dict[str, np.random.Generator], best: float, writer: CheckpointWriter) -> None:
        payload = {
            "model_state_dict": model.state_dict(), "optimizer_state_dict": optimizer.state_dict(),
            "scheduler_state_dict": scheduler.state_dict(), "epoch": epoch, "step": step,
            "order": torch.from_numpy(order.astype(np.int64)), "losses": losses, "torch_rng": torch.get_rng_state(),
            "generators": {k: g.bit_generator.state for k, g in generators.items()}, "best": best,
            "history": writer.history, "epoch_files": [p.name for p in writer.epoch_files],
        }
        tmp = out / (RunState.FILE + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(out / RunState.FILE)  # never a half-written state

    @staticmethod
    def load(out: Path) -> dict:
        return torch.load(out / RunState.FILE, map_location="cpu", weights_only=True)  # no code from the file


def train(cfg: TrainConfig) -> Path:
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    use_bf16 = cfg.bf16 if cfg.bf16 is not None else (device.type == "cuda" or cpu_has_fast_bf16())
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)  # noqa: E731
    size = (cfg.image_size, cfg.image_size)
    prep = Preprocessing(image_size=size)  # /255, as the users' pipeline trained (normalize_images: true)
    cfg.out.mkdir(parents=True, exist_ok=True)

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

    soft = None
    if cfg.teacher is not None:
        soft = teacher_maps(cfg.teacher, train_x, prep, device, autocast, cfg.out / f"teacher_maps_{file_sha256(cfg.teacher)[:12]}.npy")
        log.info("distilling %s (flip-averaged) at weight %.2f", cfg.teacher, cfg.distill_weight)
    generators = {name: np.random.default_rng([cfg.seed, i]) for i, name in enumerate(("order", "augment", "neg"))}
    negatives = None
    n_neg = round(cfg.batch_size * cfg.negative_share) if cfg.negative_share > 0 else 0
    if n_neg:
        empty = train_x[train_y.reshape(len(train_y), -1).sum(1) == 0]
        hands = [(read_rgb(s.image_path), read_mask(s.mask_path)) for s in train_samples]
        free = read_photos(cfg.nail_free)
        negatives = NegativeSampler(generators["neg"], cfg.image_size, empty, hands, free)
        log.info("negatives: %d a batch of %d from %s (%d empty-mask photos, %d nail-free photos)",
                 n_neg, cfg.batch_size, negatives.kinds, len(empty), len(free))
    check_rng = np.random.default_rng(12345)  # the same nail-free pictures every epoch
    neg_check = np.stack([synthetic(check_rng, cfg.image_size) for _ in range(64)]
                         + list(valid_x[valid_y.reshape(len(valid_y), -1).sum(1) == 0]))

    n_pos = cfg.batch_size - n_neg
    steps_per_epoch = len(train_x) // n_pos
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
        "loss": "bce+dice" + ("+negative-top1%" if n_neg else "") + ("+distill" if soft is not None else ""),
        "augment": cfg.augment,
        "seed": cfg.seed,
        "data": str(cfg.data),
        "init_from": str(cfg.init_from) if cfg.init_from else None,
        "negative_share": cfg.negative_share,
        "nail_free": str(cfg.nail_free) if cfg.nail_free else None,
        "teacher": str(cfg.teacher) if cfg.teacher else None,
        "distill_weight": cfg.distill_weight if cfg.teacher else None,
    }
    writer = CheckpointWriter(cfg.out)
    augment = Augmenter(generators["augment"], cfg.augment)
    best, first_epoch, first_step, order, running = -1.0, 1, 0, None, []
    if cfg.resume and (cfg.out / RunState.FILE).exists():
        state = RunState.load(cfg.out)
        model.load_state_dict(state["model_state_dict"])
        optimizer.load_state_dict(state["optimizer_state_dict"])
        scheduler.load_state_dict(state["scheduler_state_dict"])
        torch.set_rng_state(state["torch_rng"])
        for name, g in generators.items():
            g.bit_generator.state = state["generators"][name]
        best, first_epoch, first_step = state["best"], state["epoch"], state["step"]
        order = state["order"].numpy() if first_step else None
        running = list(state.get("losses", []))
        writer.history = state["history"]
        writer.epoch_files = [cfg.out / n for n in state["epoch_files"]]
        log.info("resuming %s at epoch %d step %d (best val_dice %.4f)", cfg.out, first_epoch, first_step, best)

    def save_state(epoch: int, step: int, order: np.ndarray, losses: list[float]) -> None:
        RunState.save(cfg.out, model=model, optimizer=optimizer, scheduler=scheduler, epoch=epoch, step=step,
                      order=order, losses=losses, generators=generators, best=best, writer=writer)

    started = time.perf_counter()
    sitting_steps = 0
    metrics: dict[str, float] = {}
    for epoch in range(first_epoch, cfg.epochs + 1):
        model.train()
        if order is None:
            order = generators["order"].permutation(len(train_x))
        bar = tqdm(range(first_step, steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
                   mininterval=5)
        for step in bar:
            idx = order[step * n_pos:(step + 1) * n_pos]
            moved = [augment(train_x[i], train_y[i], None if soft is None else soft[i]) for i in idx]
            images = [m[0] for m in moved]
            targets = [m[1].astype(np.float32) if soft is None
                       else (1 - cfg.distill_weight) * m[1] + cfg.distill_weight * m[2] for m in moved]
            for _ in range(n_neg):
                image, _, _ = augment(negatives(), np.zeros(size, np.uint8))
                images.append(image)
                targets.append(np.zeros(size, np.float32))
            x = to_tensor(np.stack(images), prep).to(device, memory_format=torch.channels_last)
            y = torch.from_numpy(np.stack(targets)).float().unsqueeze(1).to(device)
            negative = torch.arange(len(images), device=device) >= n_pos
            with autocast():
                logits = model.forward_logits(x)
            loss = training_loss(logits.float(), y, negative)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(running[-20:]):.4f}", refresh=False)  # redraw at mininterval only
            sitting_steps += 1
            if cfg.stop_after and sitting_steps >= cfg.stop_after and step + 1 < steps_per_epoch:
                save_state(epoch, step + 1, order, running)
                print(f"stopped at epoch {epoch} step {step + 1} after {sitting_steps} steps; --resume goes on")
                return cfg.out
            if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < steps_per_epoch:
                save_state(epoch, step + 1, order, running)
        metrics = {"train_loss": float(np.mean(running)) if running else float("nan"),
                   **validate(model, valid_x, valid_y, prep, device, autocast),
                   "val_false_nail_rate": false_nail_rate(model, neg_check, prep, device, autocast)}
        is_best = metrics["val_dice"] > best
        best = max(best, metrics["val_dice"])
        writer.save_epoch(checkpoint_payload(model, ckpt_config, epoch, metrics, optimizer, scheduler), is_best)
        order, first_step, running = None, 0, []
        save_state(epoch + 1, 0, np.zeros(0, np.int64), running)
        print(f"epoch {epoch}/{cfg.epochs}  train_loss {metrics['train_loss']:.4f}  val_loss {metrics['val_loss']:.4f}  "
              f"val_dice {metrics['val_dice']:.4f}  val_iou {metrics['val_iou']:.4f}  "
              f"false_nails {metrics['val_false_nail_rate']:.3f}  "
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
