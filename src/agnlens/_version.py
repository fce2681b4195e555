"""The installed version of agnlens, on the ground floor: every provenance record names it, and
importing it must not pull in the rest of the package."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("agnlens")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
