"""Shared plumbing of the LLMOps services. No business logic lives here."""
