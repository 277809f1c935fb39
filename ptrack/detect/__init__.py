"""Frames to boxes and crops: the one-pass detect loop, video reading and registration, the
detector (model lookup, the OpenVINO and torch backends, INT8 quantization, letterboxing) and
crop cutting. Importing this package imports nothing heavy; each module loads what it needs."""
