"""The ``llmops`` command line: ``llmops up`` runs the platform locally; the other commands administer it."""
