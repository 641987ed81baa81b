"""Small, named repairs that turn a damaged essay into clean text. (Implementation: corpus issue.)"""

from __future__ import annotations


def to_simplified(text: str) -> str:
    """Simplified-Chinese form of `text`, used for matching (keyword search, evaluation)."""
    raise NotImplementedError
