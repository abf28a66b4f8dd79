"""Run the desk under uvicorn in a background thread (the demo and the browser tests)."""
from __future__ import annotations

import socket
import threading

import uvicorn

from .app import create_app


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class DeskThread:
    """uvicorn serving create_app(settings, engine) on host:port until stop(); start() waits until it
    listens and raises if it could not."""

    def __init__(self, settings, engine, host: str = "127.0.0.1", port: int | None = None):
        self.host, self.port = host, port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(create_app(settings, engine), host=host, port=self.port, log_level="warning",
                                lifespan="off", server_header=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="desk", daemon=True)

    def start(self) -> DeskThread:
        self.thread.start()
        for _ in range(1000):
            if self.server.started:
                return self
            if not self.thread.is_alive():
                break
            self.thread.join(0.01)
        raise RuntimeError(f"the desk did not start on {self.url}")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> DeskThread:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
