"""The LLMOps trainer: fine-tuning job API and Celery workers (PEFT LoRA), tracked and registered in MLflow."""
