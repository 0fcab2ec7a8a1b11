"""The wire protocol between the Blender extension and the daemon, and the client both use.

Pure Python (stdlib, msgpack, numpy); pyzmq is imported only by the client's transport. Inside Blender this is
a subpackage of the extension, for the daemon a top-level package, so modules import each other relatively.
"""

__version__ = "0.1.0"
PROTOCOL_VERSION = 2
"""2: loopback TCP authenticates in the ZeroMQ handshake (PLAIN with the connection key); 1 did not."""
