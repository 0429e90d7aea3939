"""The bundled model library: one architecture per `models/<name>/` folder.

Checkpoints use the Hugging Face layout (`config.json` + `model.safetensors`), so that
library's checkpoints of the same architectures load here unchanged. Importing this package
is cheap (no torch); import `model_lib.auto` or a model's modeling module to get models.
"""
