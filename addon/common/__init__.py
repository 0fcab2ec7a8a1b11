"""What every feature of the add-on shares on the Blender side: Blender version differences (``compat``), the
running connection and notices (``runtime``), the preferences, the one main-thread pump, the scene's job list
(``properties``), strips in the Sequencer, the request builders, user errors and panel helpers."""
