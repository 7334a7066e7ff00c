"""Import a checkpoint into the BentoML model store as ``unet:<version>``.

    python -m models_import                         # the configured checkpoint directory
    python -m models_import --checkpoint FILE       # one file
    python -m models_import --checkpoint-dir DIR    # pick best, then final, then newest in DIR

Importing the same file twice does not create a second version.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nailseg.config import ConfigError, load_settings
from nailseg.model.checkpoint import CheckpointError, find_checkpoint, read_checkpoint
from nailseg.model.spec import Int8Gate, StoredModelInfo
from nailseg.store.importer import import_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models_import", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, help="checkpoint file (.pth, .pt, .ckpt)")
    source.add_argument("--checkpoint-dir", type=Path, help="directory to pick a checkpoint from")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml or $UNET_CONFIG)")
    parser.add_argument("--calibration-images", type=Path,
                        help="nail photos to calibrate and check the int8 model with (default: the project's "
                             "examples/; use photos like the ones your service will see)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        path = args.checkpoint or find_checkpoint(args.checkpoint_dir or settings.model.checkpoint_dir)
        ckpt = read_checkpoint(path, fallback_variant=settings.model.model_variant)
        stored, created = import_checkpoint(ckpt, settings, args.calibration_images)
    except (CheckpointError, ConfigError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    info = stored.info.metadata
    verb = "imported" if created else "already imported as"
    print(f"{verb} {stored.tag}: {path} ({info['model_variant']}, {info['parameters']:,} parameters, "
          f"architecture from {info['architecture_source']}, input {info['preprocessing']['image_size']}, "
          f"preprocessing from {info['preprocessing_source']})")
    print(int8_line(StoredModelInfo.model_validate(info).int8_gate))
    return 0


def int8_line(gate: Int8Gate | None) -> str:
    """One line on the int8 model: kept (auto serves it where the serving CPU shows it is right and faster) or
    not, and the figures."""
    if gate is None:
        return "int8: none (needs openvino and nncf)"
    if gate.passed:
        return (f"int8: gate passed ({gate.summary()} on {gate.inputs} calibration inputs); "
                "precision auto serves it where, at start-up, the serving CPU shows it agrees with fp32 on the same "
                "photos and is faster")
    return (f"int8: gate FAILED ({gate.summary()} on {gate.inputs} calibration inputs): no int8 model kept for "
            "precision auto; precision int8 forced still serves it, with a warning")


if __name__ == "__main__":
    sys.exit(main())
