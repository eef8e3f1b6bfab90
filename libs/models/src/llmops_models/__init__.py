"""Model files the services share: the bundled model's preparation (GGUF -> Hugging Face checkpoint)."""
