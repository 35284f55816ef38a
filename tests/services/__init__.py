"""Real services the tests start themselves (PostgreSQL, a Ray head), on loopback."""
import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
