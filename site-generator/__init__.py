"""The static leaderboard: reads finished jobs from MLflow and publishes HTML, JSON and CSV.

`build_site` builds once; `SiteBuilder` rebuilds after finished jobs, a burst of requests building once.
"""

from .build import SiteReport, build_site
from .trigger import SiteBuilder

__all__ = ["SiteBuilder", "SiteReport", "build_site"]
