"""From an image to labelled faces: decoding, detection, crops, classification, tracking, drawing,
video and live streams."""
