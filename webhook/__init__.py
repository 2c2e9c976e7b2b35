"""The FastAPI service: git smart-HTTP, the hooks' endpoint, health, and (later) the REST API."""
