"""Grafana dashboards as code: typed definitions (``model``, ``definitions``), provisioning
through Grafana's API (``push``) and as files for docker-compose (``export``).  See
docs/dashboards.md."""
