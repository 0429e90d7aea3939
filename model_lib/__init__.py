"""The bundled model library: one architecture per `models/<name>/` folder.

Checkpoints use the Hugging Face layout (`config.json` + `model.safetensors`, that library's
field names and state-dict keys), so its checkpoints of the same architectures load here
unchanged, offline::

    from model_lib.auto import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained("path/to/gpt2")
    tokens = model.generate(input_ids, max_new_tokens=20)

Models: `gpt2`, `llama` (causal LMs with `generate()`), `bert` (encoder, masked-LM head).
A new model starts as a copy of an existing one: `python -m model_lib.scaffold NAME --like
gpt2`. Importing this package is cheap (no torch); `model_lib.auto`, the configurations and
the scaffold import torch only when a model class is asked for.
"""
