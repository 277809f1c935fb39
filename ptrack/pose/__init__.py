"""Pose of the chosen persons: COCO-17 keypoints in video pixels.

``keypoints`` (pure: padded crop regions, which pose in a crop is the person's, mapping back to
video pixels, skeleton and coverage), ``model`` (an Ultralytics pose model run on batches of
person crops: ptrack's OpenVINO runtime on a CPU with detect's export cache and precision
choice, torch on CUDA) and ``stage`` (``ptrack pose``: one decoding pass for all requested
persons, resumable, stored in the project).
"""
