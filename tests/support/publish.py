#!/usr/bin/env python3
"""Publish a port of another network namespace on the host's loopback, as a
container runtime's port proxy does (Docker's docker-proxy, Podman's
rootlessport): `publish.py PID PORT` listens on 127.0.0.1 (a free port),
prints `{"event": "listening", "port": N}` once, then forwards each
connection to 127.0.0.1:PORT inside the network namespace of process PID.

The listening socket is made in the host's namespace; then the process
enters PID's namespace (setns), so every connection it opens afterwards is
made there. Runs until killed. Needs root (setns)."""

import ctypes
import json
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
        try:
            s.shutdown(how)
        except OSError:
            pass


def serve(client, port):
    try:
        upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    a = threading.Thread(target=pump, args=(client, upstream), daemon=True)
    b = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    a.start()
    b.start()
    a.join()
    b.join()
    client.close()
    upstream.close()


def main():
    pid, port = int(sys.argv[1]), int(sys.argv[2])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        sys.exit(f"setns into /proc/{pid}/ns/net: {os.strerror(err)}")
    os.close(fd)
    print(json.dumps({"event": "listening", "port": listener.getsockname()[1]}), flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, port), daemon=True).start()


if __name__ == "__main__":
    main()
