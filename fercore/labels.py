"""The seven FER2013 emotions in dataset index order, their aliases and display colours."""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES: int = len(EMOTIONS)

# BGR-free hex colours for charts (plotly) and RGB tuples for drawing on frames.
COLORS_HEX: dict[str, str] = {
    "angry": "#e53935",
    "disgust": "#7cb342",
    "fear": "#8e24aa",
    "happy": "#fdd835",
    "sad": "#1e88e5",
    "surprise": "#fb8c00",
    "neutral": "#9e9e9e",
}

_ALIASES: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "calm": "neutral",
}


def color_rgb(name: str) -> tuple[int, int, int]:
    """RGB tuple (0–255) of an emotion's display colour."""
    h = COLORS_HEX[name].lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def canonical_emotion(name: str) -> str | None:
    """Map a folder or column name (any case, common aliases, or an index '0'–'6') to an emotion.

    Returns None when the name is not an emotion we know.
    """
    key = name.strip().lower()
    if key.isdigit() and int(key) < NUM_CLASSES:
        return EMOTIONS[int(key)]
    # "3_happy", "happy-faces": try the alphabetic words in the name
    if key in _ALIASES:
        return _ALIASES[key]
    for part in key.replace("-", "_").replace(" ", "_").split("_"):
        if part in _ALIASES:
            return _ALIASES[part]
    return None
