"""The package both programs share: the wire contract (``worklens.v1``) and the
small grammar they both speak — durations, typed TOML/env configuration and the
command-line error convention. Nothing here knows about agents or collectors."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("worklens")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"
