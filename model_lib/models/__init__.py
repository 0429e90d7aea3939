"""One package per architecture, found by `model_lib.auto` from the folder names."""
