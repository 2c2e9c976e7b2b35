"""Example submissions shipped with the platform (the demo pushes `padim/`; `padim-verified/` is
the same model for a verified benchmark: it writes predictions.csv and maps, the platform scores)."""

from pathlib import Path

PADIM = Path(__file__).resolve().parent / "padim"
PADIM_VERIFIED = Path(__file__).resolve().parent / "padim-verified"
