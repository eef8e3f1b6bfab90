"""The bundled base model, named the same way everywhere: inference serves it under this name, a training job names
it as its base model, the trainer and the CLI prepare it under this directory name in the model cache."""

BUNDLED_MODEL_NAME = "smollm2-135m-instruct"
