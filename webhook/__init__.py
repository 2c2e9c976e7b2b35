"""The FastAPI service: git smart-HTTP with the hooks' endpoint, push handling (`intake/`), the REST
API, health, and the web form on its own port."""
