"""The streaming converter: colour match, masks and blending, stages and the threaded pipeline."""
