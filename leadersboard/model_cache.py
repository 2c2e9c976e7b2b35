"""The operator's model cache: pretrained weights that jobs read with no network.

A folder laid out like a user's `~/.cache`, so an operator can fill it on a machine with a network
(run the model once there, or `huggingface-cli download`) and copy it over:

    CACHE/torch/hub/checkpoints/resnet18-f37072fd.pth           torchvision, torch.hub (TORCH_HOME)
    CACHE/huggingface/hub/models--timm--resnet18.a1_in1k/...    timm and transformers (HF_HOME)

Every job sees it read-only, with TORCH_HOME and HF_HOME pointing into it and HF_HUB_OFFLINE=1, so
`pre_trained: true` loads from it instead of trying to download. anomalib's timm backbones
(Padim's resnet18, say) come from the Hugging Face part: `timm/<model>.<tag>` repositories.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePath

TORCH_DIR = "torch"  # TORCH_HOME
HF_DIR = "huggingface"  # HF_HOME
MOUNT_NAME = "models"  # where a job sees the cache: in its scratch folder, beside work/ and home/


class ModelCacheError(Exception):
    """The folder is no model cache; the message shows the expected layout."""


@dataclass(frozen=True)
class CacheContents:
    torch_files: int  # weight files under torch/hub/checkpoints
    hf_models: tuple[str, ...]  # repositories under huggingface/hub, as owner/name

    def summary(self) -> str:
        models = ", ".join(self.hf_models) or "none"
        return f"{self.torch_files} torch hub checkpoint(s); Hugging Face models: {models}"


def inspect(folder: Path) -> CacheContents:
    """What the cache at `folder` holds; `ModelCacheError` when it holds nothing a job could load."""
    if not folder.is_dir():
        raise ModelCacheError(f"{folder} is not a folder")
    checkpoints = folder / TORCH_DIR / "hub" / "checkpoints"
    torch_files = sum(1 for p in checkpoints.iterdir() if p.is_file()) if checkpoints.is_dir() else 0
    hub = folder / HF_DIR / "hub"
    hf_models = tuple(sorted(
        p.name.removeprefix("models--").replace("--", "/", 1) for p in hub.iterdir()
        if p.is_dir() and p.name.startswith("models--") and (p / "snapshots").is_dir())) if hub.is_dir() else ()
    if not torch_files and not hf_models:
        raise ModelCacheError(
            f"no weights found in {folder}: a model cache holds torch/hub/checkpoints/*.pth (TORCH_HOME) and/or "
            "huggingface/hub/models--OWNER--NAME/snapshots/... (HF_HOME), as ~/.cache does after a model was "
            "loaded once with a network")
    hidden = _not_readable_by_all(folder)
    if hidden is not None:  # jobs run as an unprivileged user of their own: they would not see it
        raise ModelCacheError(f"{hidden} is not readable by every user, and jobs run as a user of their own: "
                              f"run 'chmod -R a+rX {folder}'")
    return CacheContents(torch_files, hf_models)


def _not_readable_by_all(folder: Path) -> Path | None:
    """The first file or folder under `folder` that others may not read (or enter), or None."""
    for root, dirs, files in os.walk(folder):
        for name, needed in [*((d, stat.S_IROTH | stat.S_IXOTH) for d in dirs), *((f, stat.S_IROTH) for f in files)]:
            path = Path(root) / name
            mode = path.stat().st_mode  # links are followed, as a job's open() would
            if mode & needed != needed:
                return path
    return None


def environment(inside: PurePath | str) -> dict[str, str]:
    """The variables that point a job's torch and Hugging Face at the cache seen at `inside`."""
    return {"TORCH_HOME": f"{inside}/{TORCH_DIR}", "HF_HOME": f"{inside}/{HF_DIR}", "HF_HUB_OFFLINE": "1"}
