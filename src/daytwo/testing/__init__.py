"""Test doubles shipped with daytwo so users can test their agents too."""

from daytwo.testing.scripted_model import Reply, ScriptedModelServer, hashing_embedding

__all__ = ["Reply", "ScriptedModelServer", "hashing_embedding"]
