"""Imports every analysis module so that each registers its spec kind.

Extra modules (plugins, or test doubles for the job machinery) can be named, comma-separated, in
WORKBENCH_EXTRA_ANALYSES; worker processes import them too.
"""
import importlib
import os

from . import attribution_image, attribution_text, model_check, prompt, sae_dashboard, sae_error, sae_probe, sae_runs  # noqa: F401

for _name in filter(None, os.environ.get("WORKBENCH_EXTRA_ANALYSES", "").split(",")):
    importlib.import_module(_name.strip())
