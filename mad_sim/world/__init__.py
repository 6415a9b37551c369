"""world layer of mad-sim: the pose-space world state, its geometry and dynamics, scripted traffic.

The bottom layer with ``data`` (numpy only, no torch): world frame, metres, seconds, radians, 10 Hz.
"""
