"""Boxes to persons: ByteTrack and the bidirectional cut (tracklets), grouping tracklets into
persons with appearance (colour, embedding, per-video metric), smoothing, ranking, the user's
constraints, and the stage wiring (`stages`) that keeps each result current in the store."""
