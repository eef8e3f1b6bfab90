"""The LLMOps retriever service."""
