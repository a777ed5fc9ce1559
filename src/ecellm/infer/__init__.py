"""Inference: requests, backends (hf, llamacpp, openai, vllm), the predict loop and the Python API.

Heavy modules (torch, transformers) are imported by the functions that need them.
"""
