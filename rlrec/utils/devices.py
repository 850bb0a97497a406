"""The one place a device setting (`auto`, `cpu`, `cuda`, `cuda:1`, ...) becomes a `torch.device`."""

from __future__ import annotations

import torch

from rlrec.utils.errors import ConfigError


def resolve_device(device: str | torch.device | None, owner: str = "") -> torch.device:
    """`auto`/None → CUDA when available, else CPU; anything else must be a usable torch device.

    `owner` (a stage or part, e.g. `sid`) starts the message of a bad value, so the user knows which field.
    """
    if isinstance(device, torch.device):
        return device
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where = f"{owner}: " if owner else ""
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"{where}device={device!r} is not a torch device (expected auto, cpu, cuda, ...)") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{where}device={device!r} but CUDA is not available; use auto or cpu")
    return resolved
