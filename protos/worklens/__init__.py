"""Worklens: one import namespace for both programs.

``worklens.v1``: the wire contract (generated from ``agent.proto``, committed
beside it); ``worklens.common``: what both programs share (config grammar,
durations, batch packing, CLI convention); ``worklens.agent``: the agent;
``worklens.collector``: the collector (``pip install 'worklens[collector]'``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("worklens")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"
