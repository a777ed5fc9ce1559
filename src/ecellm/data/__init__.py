"""Samples, loaders for every ECInstruct distribution, raw-source readers and builders."""
