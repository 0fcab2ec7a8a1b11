"""Writing, checking and removing the daemon's connection file (see shared/connection.py for reading)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import zmq

from shared import messages
from shared.connection import ConnectionInfo, read_connection_file
from shared.errors import ConnectionFileError, VfxError
from shared.wire import ReplayGuard, new_id, pack, unpack


class AlreadyRunning(VfxError):
    code = "already_running"


def prepare_runtime_dir(path: Path) -> None:
    """Create the runtime directory with mode 0700 (or tighten it), refusing one owned by someone else."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if sys.platform == "win32":
        return
    info = path.stat()
    if info.st_uid != os.getuid():
        raise VfxError(f"runtime directory {path} belongs to another user; choose another with --runtime-dir")
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)


def daemon_answers(info: ConnectionInfo, timeout: float = 1.0) -> bool:
    """Whether a daemon answers a signed ping at ``info``'s endpoint within ``timeout`` seconds."""
    if info.server_public_key:
        return _pid_alive(info.pid)  # no client key to talk to an encrypted daemon: trust its pid
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    info.authenticate(sock)
    try:
        sock.connect(info.endpoint)
        msg_id = new_id()
        sock.send_multipart(pack(messages.PING, {}, key=info.key_bytes, session=new_id(), msg_id=msg_id))
        if not sock.poll(int(timeout * 1000)):
            return False
        reply = unpack(sock.recv_multipart(), key=info.key_bytes, guard=ReplayGuard())
        return reply.parent_id == msg_id
    except (zmq.ZMQError, VfxError):
        return False
    finally:
        sock.close(linger=0)
        context.term()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_no_live_daemon(path: Path) -> None:
    """Raise AlreadyRunning if the file belongs to a live daemon; remove it if it is stale."""
    if not path.exists():
        return
    try:
        info = read_connection_file(path)
    except ConnectionFileError:
        path.unlink(missing_ok=True)
        return
    if _pid_alive(info.pid) and daemon_answers(info):
        raise AlreadyRunning(
            f"a daemon is already running (pid {info.pid}, connection file {path}); stop it with "
            "`python -m daemon stop` or use another --runtime-dir"
        )
    path.unlink(missing_ok=True)


def write_connection_file(path: Path, info: ConnectionInfo) -> None:
    """Write atomically with mode 0600: a temporary file created 0600, then renamed over the target."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(info.to_json())
    os.replace(tmp, path)


def remove_connection_file(path: Path, session_id: str) -> None:
    """Remove the file if it is still ours (a newer daemon may have replaced it)."""
    try:
        if read_connection_file(path).session_id == session_id:
            path.unlink(missing_ok=True)
    except ConnectionFileError:
        pass
