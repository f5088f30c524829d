"""daytwo keeps AI agents alive, relevant and performant after launch ("Day 2").

The public API is what ``__all__`` lists; everything else may change.
"""

from daytwo._version import __version__
from daytwo.exceptions import DaytwoError, UserError
from daytwo.settings import Settings, load_settings
from daytwo.store import Store

__all__ = [
    "DaytwoError",
    "Settings",
    "Store",
    "UserError",
    "__version__",
    "load_settings",
]
