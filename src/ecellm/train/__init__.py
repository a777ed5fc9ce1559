"""Instruction tuning (LoRA, QLoRA or full) and export of ecellm models.

Public API: :func:`ecellm.train.run.train`, :func:`ecellm.train.config.load_config`,
:func:`ecellm.train.export.export`.
"""
