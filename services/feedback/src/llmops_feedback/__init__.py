"""The LLMOps feedback service."""
