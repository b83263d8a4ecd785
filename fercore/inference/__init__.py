"""From an image to labelled faces: decoding, detection, crops, classification (with the model's
temperature), tracking, drawing, video and live streams."""
