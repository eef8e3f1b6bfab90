"""LLMOps inference service: the vLLM OpenAI server, supervised, with LoRA adapters synced from the MLflow registry."""
