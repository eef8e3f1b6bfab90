"""Prompts from MLflow's prompt registry: resolved, cached and applied by the gateway (see ``registry``)."""
