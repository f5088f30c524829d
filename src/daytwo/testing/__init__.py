"""Test doubles shipped with daytwo so users can test their agents too."""

from daytwo.testing.models import scripted_chat_model, scripted_profile
from daytwo.testing.scripted_model import Reply, ScriptedModelServer, hashing_embedding

__all__ = [
    "Reply",
    "ScriptedModelServer",
    "hashing_embedding",
    "scripted_chat_model",
    "scripted_profile",
]
