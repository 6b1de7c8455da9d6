"""LoRA training runs: the run spec, the worker subprocess, its logs and the adapters it makes."""
