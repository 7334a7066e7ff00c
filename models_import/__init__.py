"""Import a checkpoint into the BentoML model store: ``python -m models_import``."""
