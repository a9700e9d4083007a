"""Wayland protocols the agent speaks that pywayland does not ship bindings
for: their XML definitions (``xml/``, with their licences) and the bindings
generated from them by pywayland's scanner (``generate.py``; a test keeps them
fresh). Importing this package needs pywayland."""
