"""The VFX Motion Capture inference daemon. Importing it imports neither torch nor any model library."""
