"""Profiles: what an agent is (instructions, tools, policy, limits) and how to find one.

load_profile(dir)            one folder (profile.yaml + SKILL.md) -> Profile, or ProfileError
ProfileRegistry(dirs)        every folder in order, hot-reloaded on file changes
classify(text, profiles)     transparent keyword routing to the best-fitting profile
"""

from stagent_lab.profiles.classifier import Classification, classify
from stagent_lab.profiles.loader import load_profile
from stagent_lab.profiles.model import (
    DEFAULT_ALLOWED_TOOLS,
    KNOWN_RUNTIMES,
    KNOWN_TOOLS,
    CapabilityOverride,
    HandoffPolicy,
    Profile,
    RuntimeOverride,
    SmokeTest,
    ToolPolicy,
)
from stagent_lab.profiles.registry import (
    ProfileRegistry,
    builtin_profiles_dir,
    default_profile_dirs,
)

__all__ = [
    "DEFAULT_ALLOWED_TOOLS",
    "KNOWN_RUNTIMES",
    "KNOWN_TOOLS",
    "CapabilityOverride",
    "Classification",
    "HandoffPolicy",
    "Profile",
    "ProfileRegistry",
    "RuntimeOverride",
    "SmokeTest",
    "ToolPolicy",
    "builtin_profiles_dir",
    "classify",
    "default_profile_dirs",
    "load_profile",
]
