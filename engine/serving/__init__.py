"""Serving adapters with vLLM: the server's command line, its LoRA endpoints, safe loads."""
