"""The static leaderboard: reads finished jobs from MLflow and publishes HTML, JSON and CSV.

`build_site` builds once; `SiteBuilder` rebuilds after finished jobs, a burst of requests building once;
`rebuild_on_requests` answers workers on other hosts, which ask for a build over Redis (`request_rebuild`).
"""

from .build import SiteReport, build_site
from .requests import rebuild_on_requests, request_rebuild
from .trigger import SiteBuilder

__all__ = ["SiteBuilder", "SiteReport", "build_site", "rebuild_on_requests", "request_rebuild"]
