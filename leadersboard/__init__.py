"""LeadersBoard: git push an anomaly-detection model, get it evaluated, see it ranked."""

__version__ = "0.1.0"
