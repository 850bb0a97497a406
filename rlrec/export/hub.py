"""Upload an exported folder to the Hugging Face Hub (`HfApi.create_repo` + `upload_folder`).

rlrec runs offline by default (`HF_HUB_OFFLINE=1` is set by the `rlrec` command, because a hub lookup
otherwise takes ~26 s to fail without network), so a push checks that first and says how to turn it
off, instead of failing deep inside `huggingface_hub`. Any failure of the upload leaves the exported
folder as it is, and the error says where it is, so the push can be retried without exporting again.
The token comes from `HF_TOKEN` or `hf auth login`, as everywhere in `huggingface_hub`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from rlrec.utils.errors import ConfigError, RlrecError

logger = logging.getLogger(__name__)

_TRUE = {"1", "ON", "YES", "TRUE"}


class HubError(RlrecError):
    """The upload to the Hub failed; the exported folder is intact."""


def hub_offline() -> bool:
    """True when `HF_HUB_OFFLINE` (or the older `TRANSFORMERS_OFFLINE`) turns the Hub off."""
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(name, "").strip().upper() in _TRUE for name in names)


def push_folder(folder: str | os.PathLike, repo_id: str, *, private: bool = False, revision: str | None = None,
                commit_message: str | None = None, token: str | None = None) -> dict[str, Any]:
    """Create `repo_id` (a model repo; kept if it exists) and upload `folder` to it, on `revision` if given.

    Returns `{"repo_id", "url", "revision", "commit"}`. Raises ConfigError in offline mode and HubError
    when the Hub cannot be reached or refuses the upload (no token, no rights, invalid card metadata).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: exported folder not found")
    if hub_offline():
        raise ConfigError(
            f"push_to_hub: offline mode is on (HF_HUB_OFFLINE=1, which the `rlrec` command sets by default); "
            f"run with HF_HUB_OFFLINE=0 to upload. The exported folder is intact at {folder}"
        )
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model", revision=revision,
                                 commit_message=commit_message or f"Upload {folder.name} exported by rlrec")
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # network, auth, refused metadata: all end the same way for the user
        raise HubError(f"push_to_hub to {repo_id!r} failed ({type(err).__name__}: {err}); the exported folder is "
                       f"intact at {folder}: fix the cause (network, HF_TOKEN / `hf auth login`, repo rights) and "
                       "retry the push") from err
    commit = getattr(info, "oid", None)
    logger.info("pushed %s to %s (revision %s, commit %s)", folder, repo_id, revision or "main", commit)
    return {"repo_id": repo_id, "url": str(getattr(url, "url", url)), "revision": revision or "main",
            "commit": commit}
