"""The Worklens agent: samples the focused window, idle state and input counts,
and process usage; turns them into spans; spools them durably and ships them
to the collector. Data flows one way: sensors -> spans -> sink (print or spool)
-> shipper -> wire."""

if __name__ != "worklens.agent":  # e.g. `import agent` from a checkout: not our name
    raise ImportError("Worklens installs one import name: use `import worklens.agent` "
                      "(pip install . or make run/test), not `import agent`")

import os as _os

# gRPC's C core prints every failed TLS handshake on stderr at INFO level; the
# agent explains failures in one sentence instead (agent/channel.py: explain).
# The core reads this when grpc is first imported, hence here, before any module.
_os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
