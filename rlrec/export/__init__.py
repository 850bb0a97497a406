"""Exporting a trained model: a Hub-ready folder (`export_model`) and its upload (`push_folder`).

- `folder`: `export_model(model_path, output_dir, ...)`: weights (LoRA merged or kept), tokenizer, SID
  index, item catalog, generation and inference configs, model card, manifest; written atomically.
- `card`: the model card (`README.md`) with Hub metadata and the latest evaluation.
- `source`: reading a training output folder (manifest, latest evaluation, base-model chain).
- `hub`: `push_folder(folder, repo_id, ...)` with `huggingface_hub`, clear about offline mode.
"""

from rlrec.export.folder import export_model
from rlrec.export.hub import HubError, hub_offline, push_folder

__all__ = ["HubError", "export_model", "hub_offline", "push_folder"]
