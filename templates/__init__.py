"""The jinja2 templates of the static site (`site/`) and of the web form (`web/`), shipped as
package data; the site's templates name each other from this folder ("site/_layout.html")."""

from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent
WEB_DIR = TEMPLATES_DIR / "web"
