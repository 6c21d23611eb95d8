#!/usr/bin/env python3
"""Hold N established loopback TCP connections to one port, for the
connections benchmark (bench/connections.sh, benches/connections.rs).

A "gateway" process forks --listeners children that each accept on the same
port with SO_REUSEPORT (one process may hold at most ~20000 fds here), as Node's
cluster module does. --clients separate processes connect, each from its own
127.0.0.x source address, so the ephemeral port range is not the limit.

Prints one JSON line {"port", "gateway_pid", "connections"} once every
connection is established on both ends, then holds them until stdin closes.
"""
import argparse
import ctypes
import json
import os
import signal
import socket
import sys
import time

IP_BIND_ADDRESS_NO_PORT = 24
PR_SET_PDEATHSIG = 1


def die_with_parent():
    """Every forked process gets SIGKILL when its parent exits."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(0)


def fork():
    pid = os.fork()
    if pid == 0:
        die_with_parent()
    return pid


def listener_child(port, backlog):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(backlog)
    held = []
    while True:
        c, _ = s.accept()
        held.append(c)


def gateway(port, listeners, backlog, ready_w):
    """The watched process: its children accept and hold the server ends."""
    kids = []
    for _ in range(listeners):
        pid = fork()
        if pid == 0:
            os.close(ready_w)
            try:
                listener_child(port, backlog)
            finally:
                os._exit(0)
        kids.append(pid)
    os.write(ready_w, b"x")
    os.close(ready_w)
    while True:
        signal.pause()


def client(port, n, source, done_w):
    held = []
    for _ in range(n):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        c.bind((source, 0))
        c.connect(("127.0.0.1", port))
        held.append(c)
    os.write(done_w, b"x")
    while True:
        signal.pause()


def free_port_below_ephemeral():
    """A free port under the ephemeral range, as a gateway's 18789 is: a
    client's ephemeral local port can then never equal it."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    for port in range(max(1024, low - 10000), low):
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            probe.close()
    sys.exit("no free port below the ephemeral range")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, required=True)
    p.add_argument("--listeners", type=int, default=4)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--backlog", type=int, default=4096)
    a = p.parse_args()

    port = free_port_below_ephemeral()

    children = []
    r, w = os.pipe()
    pid = fork()
    if pid == 0:
        os.close(r)
        gateway(port, a.listeners, a.backlog, w)
    children.append(pid)
    os.read(r, 1)
    time.sleep(0.2)  # listeners bound

    per = [a.connections // a.clients] * a.clients
    per[0] += a.connections - sum(per)
    for i, n in enumerate(per):
        cpid = fork()
        if cpid == 0:
            os.close(r)
            client(port, n, f"127.0.0.{10 + i}", w)
        children.append(cpid)
    os.close(w)
    for _ in per:
        if os.read(r, 1) != b"x":
            sys.exit("a client failed")
    print(json.dumps({"port": port, "gateway_pid": pid, "connections": a.connections}), flush=True)
    sys.stdin.read()
    for c in children:
        try:
            os.kill(c, signal.SIGKILL)
        except ProcessLookupError:
            pass


if __name__ == "__main__":
    main()
