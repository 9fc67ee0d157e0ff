"""What the h2c test clients share (imported by h2_flood.py and h2_streams.py)."""
import socket

import h2.config, h2.connection


def connect(port, timeout):
    """An HTTP/2 client connection with prior knowledge to 127.0.0.1:port, preface sent."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    return s, c
