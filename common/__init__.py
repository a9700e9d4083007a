"""What both programs share, apart from the wire contract (``worklens.v1``):
the typed TOML/env configuration grammar (``settings``), durations as people
write them, HOST:PORT rules (``addresses``), the command-line convention
(``cli``), the packed transport form of batches (``packing``) and the few names
both ends of the wire must agree on (``wire``). Nothing here knows about agents
or collectors; the agent installs it without any collector library."""

if __name__ != "worklens.common":  # e.g. `import common` from a checkout: not our name
    raise ImportError("Worklens installs one import name: use `import worklens.common` "
                      "(pip install . or make run/test), not `import common`")
