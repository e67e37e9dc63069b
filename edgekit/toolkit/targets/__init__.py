"""Hardware targets: shipped YAML profiles of device classes, user profiles, and `local`."""

from edgekit.toolkit.targets.compat import Emulation, can_emulate
from edgekit.toolkit.targets.loader import get_target, load_targets
from edgekit.toolkit.targets.local import local_profile
from edgekit.toolkit.targets.profile import LOCAL, TargetProfile

__all__ = [
    "LOCAL",
    "Emulation",
    "TargetProfile",
    "can_emulate",
    "get_target",
    "load_targets",
    "local_profile",
]
