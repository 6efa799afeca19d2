"""Benchmarks of foundry-image-mcp against the local Foundry emulator: `python -m benchmarks`.

Each figure is measured side by side with its baseline in the same run; see benchmarks/README.md.
"""
