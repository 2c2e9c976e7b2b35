"""The wheel holds every card folder as a package of `leadersboard`, with its data, and works on its
own: installed into an empty folder, its components import from there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = ["leadersboard/contract.py", "leadersboard/local/redis_server.py", "leadersboard/cli/__main__.py",
            "leadersboard/hooks/relay.sh", "leadersboard/webhook/intake/intake.py", "leadersboard/runner/job.py",
            "leadersboard/site_generator/build.py", "leadersboard/templates/site/index.html",
            "leadersboard/templates/web/static/web.js", "leadersboard/examples/padim/main.py",
            "leadersboard/examples/padim-verified/main.py", "leadersboard/runner/scoring.py"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    [built] = out.glob("leadersboard-*.whl")
    return built


def test_the_wheel_holds_every_component_and_no_tests(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    missing = [name for name in EXPECTED if name not in names]
    assert missing == []
    assert not [name for name in names if name.startswith(("tests/", "runner/", "webhook/", "support/"))]


def test_the_installed_wheel_works_without_the_checkout(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "--target", str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    code = ("import leadersboard.runner.job, leadersboard.webhook.app, leadersboard.site_generator, leadersboard.cli\n"
            "from leadersboard.templates import TEMPLATES_DIR\nfrom leadersboard.hooks import RELAY\n"
            "from leadersboard.examples import PADIM\n"
            "print(leadersboard.runner.job.__file__, TEMPLATES_DIR, RELAY, PADIM, sep='\\n')")
    # The target first on the path: found before the checkout's editable install (a finder placed last).
    result = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(target)!r})\n{code}"],
                            cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120)
    paths = [Path(line) for line in result.stdout.split()]
    assert all(target in path.parents for path in paths), paths
    assert (paths[1] / "site" / "index.html").is_file() and paths[2].is_file() and (paths[3] / "main.py").is_file()
