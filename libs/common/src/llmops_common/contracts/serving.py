"""The inference service's serving token (the bearer its OpenAI surface, ``/v1/*``, asks for) travels under one
environment variable name: the inference service reads it as its setting, and the gateway holds it under the same
name, which route variants to the inference service name in ``api_key_env``. The feedback service sends its own copy
(``FEEDBACK_INFERENCE_SERVING_TOKEN``) to the upstreams of the variants that name it."""

INFERENCE_TOKEN_ENV = "INFERENCE_SERVING_TOKEN"
