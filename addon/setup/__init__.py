"""Setting the daemon up from Blender: the Set Up Daemon button (an environment installed into the data folder)
and fetching a mode's model weights."""
