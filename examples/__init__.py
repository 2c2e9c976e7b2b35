"""Example submissions shipped with the platform (the demo pushes `padim/`)."""

from pathlib import Path

PADIM = Path(__file__).resolve().parent / "padim"
