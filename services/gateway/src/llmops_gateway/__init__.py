"""The LLMOps AI gateway."""
