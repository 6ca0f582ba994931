"""Is the configuration's control port free? Checked first by `run` (before the lock, the simulator or the database),
and light enough to answer in a moment: a taken port names the file, `[control] port`, and the process holding it."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from configuration.loading import LoadedConfig


class ControlPortError(Exception):
    """The control endpoint's address cannot be used; the message is the one line to show. `in_use`: it is taken."""

    def __init__(self, line: str, *, in_use: bool = False) -> None:
        super().__init__(line)
        self.in_use = in_use


def check_control_port(loaded: LoadedConfig) -> str:
    """The control endpoint's address can be bound (bound and released at once, as the control server binds)."""
    control = loaded.config.control
    try:
        infos = socket.getaddrinfo(control.host, control.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ControlPortError(f"[control] host = {control.host!r} cannot be resolved ({exc}); set [control] host in "
                               f"{loaded.path} to 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the control server binds
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ControlPortError(port_in_use_line(loaded), in_use=True) from None
            raise ControlPortError(f"[control] host = {control.host!r}: cannot listen on {control.host}:{control.port} "
                                   f"({exc.strerror or type(exc).__name__}); set [control] host and port in "
                                   f"{loaded.path}") from None
    return f"control: {control.host}:{control.port} is free"


def port_in_use_line(loaded: LoadedConfig) -> str:
    """What to say when the control port is taken: the file, the section and key, who holds it, the two ways out."""
    port = loaded.config.control.port
    holder = listening_process(port)
    by = f"by pid {holder[0]} ({holder[1]})" if holder else "by another program"
    return (f"[control] port = {port} is in use ({by}; a trading system already running with this configuration "
            f"shows in `kraken-actors status`); set [control] port in {loaded.path} to a free port, or stop the "
            "other process")


def listening_process(port: int, proc: Path = Path("/proc")) -> tuple[int, str] | None:
    """(pid, command name) of the process listening on TCP `port`, when /proc shows it (Linux, same user); else
    None. Only the command name: a command line may carry a secret."""
    inodes: set[str] = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    inodes.discard("socket:[0]")
    if not inodes:
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(entry.name), (entry / "comm").read_text().strip() or "?"
        except OSError:  # another user's process, or gone meanwhile
            continue
    return None


__all__ = ["ControlPortError", "check_control_port", "listening_process", "port_in_use_line"]
