"""Test doubles shipped with daytwo so users can test their agents too."""

from daytwo.testing.models import scripted_chat_model, scripted_profile
from daytwo.testing.other_family import (
    OTHER_FAMILY,
    OtherFamilyModel,
    other_family_profile,
    profiles_yaml,
)
from daytwo.testing.scripted_model import Reply, ScriptedModelServer, hashing_embedding

__all__ = [
    "OTHER_FAMILY",
    "OtherFamilyModel",
    "Reply",
    "ScriptedModelServer",
    "hashing_embedding",
    "other_family_profile",
    "profiles_yaml",
    "scripted_chat_model",
    "scripted_profile",
]
