"""Live view: a mode's live output shown in Blender's image editor, its panel, and recording takes into the
Sequencer."""
