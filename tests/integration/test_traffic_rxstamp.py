"""Kernel receive timestamps: a late read still gets the time its bytes arrived."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from loadkit.traffic.rxstamp import StampedSocket, stamped_tcp_socket

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def test_a_late_read_keeps_the_arrival_time():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    client = stamped_tcp_socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    assert isinstance(client, StampedSocket)
    client.connect(srv.getsockname())
    peer, _ = srv.accept()
    try:
        # Linux switches receive stamping on for the whole stack in deferred work the first
        # time a socket asks, so the first packets may come unstamped: wait for a stamp.
        for _ in range(50):
            peer.sendall(b"warm-up")
            time.sleep(0.02)
            client.recv(4096)
            if time.perf_counter() - client.arrived > 0.015:
                break
        for _ in range(3):
            t_send = time.perf_counter()
            peer.sendall(b"data: x\n\n")
            time.sleep(0.05)  # the reader is busy elsewhere for 50 ms
            assert client.recv(4096) == b"data: x\n\n"
            t_read = time.perf_counter()
            assert t_read - t_send >= 0.05
            # the stamp is when the bytes came in, not when the read returned
            assert t_send - 0.001 <= client.arrived < t_send + 0.010
    finally:
        for s in (client, peer, srv):
            s.close()
