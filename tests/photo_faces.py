"""Where the faces are in ../shared/data/photos, shared by the detector tests."""

from fercore.detect import Box

# Face centres (x, y) in the sample photos, measured by eye on the originals.
ASTRONAUT_FACE = (222, 115)
GRACE_FACE = (262, 215)
MESSI_FACE = (241, 111)


def contains(box: Box, point: tuple[float, float]) -> bool:
    """Whether ``point`` lies inside ``box`` (edges included)."""
    x, y = point
    return box.x <= x <= box.x + box.w and box.y <= y <= box.y + box.h
