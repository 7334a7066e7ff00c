"""``precision: auto`` on a CPU with OpenVINO: the start-up trial that decides int8 on the serving CPU itself,
and the cache that spares a restart from doing it again.

int8 is served where all three hold:

1. the model's int8 IR passed its import gate (``model_int8.xml``; ``precision.why_not_int8``);
2. on this CPU the int8 model, compiled as it is served, agrees with fp32 on the gate's own photos and their
   flips (``gate_photos.npy``, kept with the model at import), within the gate's own bounds: pooled mask IoU
   and mean |p_int8 - p_fp32| (``agreement.py``);
3. on this CPU it is faster than the fastest float path (fp32, and bf16 where the CPU has AVX512-BF16/AMX):
   every candidate runs a few timed batches of 1 and of ``inference.batch_size`` images, interleaved, in
   the same start-up; its speed is the best of each, averaged over the two (time per image at batch 1 and
   at the full batch weigh the same). The rounds stop early once the two are clearly apart (``measure``).

Otherwise the fastest float path measured is served. A model imported before the gate photos were kept
has its import gate only: int8 is then judged on the gate and the timings (on synthetic images), and the
reason says that the agreement was not checked on this CPU.

The verdict is cached, one JSON file per (model sha256 and store tag, CPU model, CPU flags, usable cores,
OpenVINO version, batch size, trial version): a restart or a second replica on the same CPU reads it, a
reload of another model measures again. The folder is ``inference.precision_cache_dir``, by default
``$BENTOML_HOME/precision_trials``; where it cannot be written the trial only logs that (the next start
measures again), and an unreadable or foreign file is ignored.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ValidationError

from nailseg.inference import hardware
from nailseg.inference.agreement import Agreement, agreement, gate_views
from nailseg.inference.ir import GATE_PHOTOS
from nailseg.inference.normalize_np import to_array
from nailseg.inference.openvino_session import OpenVinoBackend
from nailseg.inference.precision import PrecisionChoice, float_choice, why_not_int8
from nailseg.model.spec import Int8Gate, Preprocessing

log = logging.getLogger(__name__)

TRIAL_VERSION = 1  # part of the cache key: bump when the trial measures otherwise, so old verdicts are ignored
ROUNDS = 3  # at most this many timed calls of each candidate at each batch size (the best counts)
DECISIVE = 1.25  # speed ratio at which the rounds stop: int8 / the fastest float path beyond it either way
CACHE_SUBDIR = "precision_trials"  # under BENTOML_HOME, unless inference.precision_cache_dir says otherwise
PRECISIONS = ("int8", "bf16", "fp32")


class Speed(BaseModel):
    batch_1: float  # images/s, one image a call
    batch_n: float  # images/s at the runner's batch size

    @property
    def images_per_s(self) -> float:
        """The two speeds' harmonic mean: an image at batch 1 and one in a full batch weigh the same."""
        return 2 / (1 / self.batch_1 + 1 / self.batch_n)


class Verdict(BaseModel):
    """What the trial measured and chose (the cache file's content)."""

    precision: str
    reason: str
    batch_size: int
    speeds: dict[str, Speed]
    int8_mask_iou: float | None = None  # on this CPU; None: not checked (the model has no gate photos)
    int8_mean_abs_prob_diff: float | None = None
    agreement_inputs: int = 0
    trial_seconds: float
    measured_at: str  # UTC, ISO 8601


def auto_cpu(prep: Preprocessing, ir_dir: Path | None, gate: Int8Gate | None, *,
             backend: str = "auto", batch_size: int, cache_dir: Path | None = None,
             identity: tuple[str, str] | None = None) -> tuple[PrecisionChoice, OpenVinoBackend | None]:
    """``precision: auto`` on a CPU: the choice, and the OpenVINO backend the trial compiled for it (None where
    there was no trial, or its verdict came from the cache: the caller builds that one).

    ``identity`` is the model's (sha256, store tag), the cache's key with this CPU's; None: no cache."""
    why_not = why_not_int8(backend, gate, ir_dir) or (None if ir_dir is not None else "the model has no OpenVINO IR")
    if why_not is not None:
        return float_choice(why_not), None
    key = cache_key(identity, batch_size) if identity is not None else None
    path = cache_file(cache_dir or default_cache_dir(), key) if key is not None else None
    if path is not None:
        started = time.perf_counter()
        cached = read_verdict(path, key)
        if cached is not None:
            log.info("precision verdict for %s on this CPU read from %s in %.1f ms", identity[1], path,
                     (time.perf_counter() - started) * 1000)
            reason = f"{cached.reason}; cached verdict, measured {cached.measured_at}"
            return PrecisionChoice(cached.precision, reason), None
    verdict, backends = run_trial(prep, ir_dir, gate, batch_size)
    log.info("precision trial on %s: %s", hardware.cpu_model(), verdict.reason)
    if path is not None:
        write_verdict(path, key, verdict)
    return PrecisionChoice(verdict.precision, verdict.reason), backends[verdict.precision]


def run_trial(prep: Preprocessing, ir_dir: Path, gate: Int8Gate, batch_size: int,
              rounds: int = ROUNDS) -> tuple[Verdict, dict[str, OpenVinoBackend]]:
    """Compile every candidate's IR as it would be served (no torch), check int8 against fp32 on the gate photos, time them all."""
    started = time.perf_counter()
    photos = load_gate_photos(ir_dir, prep)
    views = gate_views(photos) if photos is not None else synthetic_images(prep, batch_size)
    floats = ["fp32"] + (["bf16"] if hardware.cpu_bf16_flags() else [])
    backends = {p: OpenVinoBackend.from_ir(ir_dir, p) for p in ["int8", *floats]}
    probs, speeds = measure(backends, to_array(views, prep), batch_size, rounds)
    agreed = agreement(probs["fp32"], probs["int8"], gate.threshold) if photos is not None else None
    precision, reason = decide(speeds, agreed, gate, floats, batch_size)
    seconds = time.perf_counter() - started
    verdict = Verdict(precision=precision, reason=f"{reason}; trial {seconds:.1f} s", batch_size=batch_size,
                      speeds=speeds, int8_mask_iou=agreed.mask_iou if agreed else None,
                      int8_mean_abs_prob_diff=agreed.mean_abs_prob_diff if agreed else None,
                      agreement_inputs=agreed.inputs if agreed else 0, trial_seconds=round(seconds, 3),
                      measured_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    return verdict, backends


def measure(backends: dict[str, OpenVinoBackend], x: np.ndarray, batch_size: int,
            rounds: int = ROUNDS) -> tuple[dict[str, np.ndarray], dict[str, Speed]]:
    """Each backend's probabilities for ``x`` (N, 3, H, W), run in the runner's batches (which also pays each
    one's first calls; a later full batch is its first timed call), then its best time at batch 1 and at
    ``batch_size``. The candidates take turns, so that a machine that slows down slows them all; a float
    path clearly slower than another float path drops out, and the rounds stop once int8 and the fastest
    float path are ``DECISIVE`` apart (at most ``rounds`` rounds, at least one)."""
    sessions = {p: b.session() for p, b in backends.items()}
    x_1, x_n = np.ascontiguousarray(x[:1]), x[np.arange(batch_size) % len(x)]
    best = {p: [math.inf, math.inf] for p in sessions}
    probs = {}
    for p, run in sessions.items():
        logits = []
        for i in range(0, len(x), batch_size):
            t = time.perf_counter()
            logits.append(run(x[i:i + batch_size]).copy())  # the session reuses its output
            if i > 0 and len(x) - i >= batch_size:
                best[p][1] = min(best[p][1], time.perf_counter() - t)
        probs[p] = 1 / (1 + np.exp(-np.concatenate(logits).astype(np.float64)))
        run(x_1)
        if len(x) < batch_size:
            run(x_n)
    contenders = list(sessions)
    for _ in range(max(rounds, 1)):
        for p in contenders:
            for i, batch in enumerate((x_1, x_n)):
                t = time.perf_counter()
                sessions[p](batch)
                best[p][i] = min(best[p][i], time.perf_counter() - t)
        score = {p: 2 / (t1 + tn / batch_size) for p, (t1, tn) in best.items()}
        floats = [p for p in contenders if p != "int8"]
        lead = max(floats, key=score.get) if floats else None
        contenders = [p for p in contenders if p in ("int8", lead) or score[p] * DECISIVE > score[lead]]
        if lead is None or "int8" not in sessions or not 1 / DECISIVE < score["int8"] / score[lead] < DECISIVE:
            break
    speeds = {p: Speed(batch_1=round(1 / t1, 2), batch_n=round(batch_size / tn, 2)) for p, (t1, tn) in best.items()}
    return probs, speeds


def decide(speeds: dict[str, Speed], agreed: Agreement | None, gate: Int8Gate, floats: list[str],
           batch_size: int) -> tuple[str, str]:
    """(precision, reason) from the trial's figures: int8 where it agrees with fp32 and is the fastest."""
    best_float = max(floats, key=lambda p: speeds[p].images_per_s)
    ranked = sorted(speeds, key=lambda p: speeds[p].images_per_s, reverse=True)
    figures = (", ".join(f"{p} {speeds[p].batch_1:.1f}/{speeds[p].batch_n:.1f}" for p in ranked)
               + f" img/s at batch 1/{batch_size}")
    if agreed is None:
        agrees = gate.passed
        agreement_text = (f"its import gate passed ({gate.summary()}), its agreement was not checked on this CPU "
                          "(the model has no gate photos: imported before they were kept; re-import it to check)")
    else:
        agrees = agreed.passes(gate.min_mask_iou, gate.max_mean_abs_prob_diff)
        agreement_text = (f"on this CPU it {'agrees' if agrees else 'disagrees'} with fp32 "
                          f"({agreed.summary(gate.min_mask_iou, gate.max_mean_abs_prob_diff)} "
                          f"on {agreed.inputs} gate inputs)")
    faster = speeds["int8"].images_per_s > speeds[best_float].images_per_s
    speed_text = "it is the fastest path here" if faster else f"it is slower here than {best_float}"
    if agrees and faster:
        return "int8", f"auto: int8: {agreement_text}, and {speed_text} ({figures})"
    return best_float, (f"auto: {best_float}, the fastest float path here; not int8: {agreement_text}, and "
                        f"{speed_text} ({figures})")


def load_gate_photos(ir_dir: Path, prep: Preprocessing) -> np.ndarray | None:
    """The gate's photos kept with the model, (N, H, W, 3) uint8 at its size; None where there are none usable."""
    path = ir_dir / GATE_PHOTOS
    if not path.exists():
        return None
    try:
        photos = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        log.warning("%s: cannot read the gate photos (%s): int8's agreement is not checked on this CPU", path, e)
        return None
    if photos.dtype != np.uint8 or photos.ndim != 4 or photos.shape[1:] != (*prep.image_size, 3) or not len(photos):
        log.warning("%s: gate photos of %s %s, not (N, %d, %d, 3) uint8: int8's agreement is not checked on this CPU",
                    path, photos.dtype, photos.shape, *prep.image_size)
        return None
    return photos


def synthetic_images(prep: Preprocessing, n: int) -> np.ndarray:
    """Images to time a model with where it has no gate photos (timing does not depend on what they show)."""
    return np.random.default_rng(0).integers(0, 256, (n, *prep.image_size, 3), dtype=np.uint8)


def default_cache_dir() -> Path:
    return Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml") / CACHE_SUBDIR


def cache_key(identity: tuple[str, str], batch_size: int) -> dict[str, object]:
    """What a verdict holds for: this model on this CPU, this OpenVINO and this batch size."""
    import openvino as ov

    sha256, tag = identity
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"trial": TRIAL_VERSION, "model_sha256": sha256, "model_tag": tag, "cpu": hardware.cpu_model(),
            "cpu_flags_sha256": hashlib.sha256(" ".join(sorted(hardware.cpu_flags())).encode()).hexdigest(),
            "cpus": cpus, "openvino": ov.get_version(), "batch_size": batch_size}


def cache_file(cache_dir: Path, key: dict[str, object]) -> Path:
    return cache_dir / f"{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]}.json"


def read_verdict(path: Path, key: dict[str, object]) -> Verdict | None:
    """The cached verdict for ``key``; None where there is none, or it is unreadable or for another key."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("%s: unreadable precision verdict (%s): measuring again", path, e)
        return None
    try:
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        verdict = Verdict.model_validate(data["verdict"])
    except (KeyError, ValidationError):
        log.warning("%s: not a precision verdict: measuring again", path)
        return None
    return verdict if verdict.precision in PRECISIONS else None


def write_verdict(path: Path, key: dict[str, object], verdict: Verdict) -> bool:
    """Cache ``verdict`` (atomically: a reader sees the old file or the new one); False where it cannot."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"key": key, "verdict": verdict.model_dump(mode="json")}, indent=1))
        os.replace(tmp, path)
    except OSError as e:
        log.warning("cannot cache the precision verdict in %s (%s): the next start measures again", path.parent, e)
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return False
    return True
