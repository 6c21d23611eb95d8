#!/usr/bin/env python3
"""A stand-in for the OpenClaw gateway's WebSocket control plane that fails
in the ways the real gateway cannot easily be made to (tests/rpc_probe.rs).

    ws-standin.py MODE [MODE ...]

Listens on one loopback port per MODE and prints "MODE PORT" per line, then
"ready". Every port answers GET /healthz with {"ok":true,"status":"live"}
(so the exporter's HTTP layer sees a live gateway) and WebSocket upgrades
as MODE says:

  ok          challenge, hello-ok, a health answer (the real protocol's frames)
  auth        refuses connect: AUTH_TOKEN_MISMATCH, then close 1008
  rpc_error   hello-ok, then health answers ok:false
  bad_json    a text frame that is not JSON, instead of the challenge
  binary      a binary frame instead of the challenge
  oversized   announces a 2 MiB text frame (over the exporter's 1 MiB cap)
  silent      completes the upgrade, then never sends the challenge
  no_upgrade  reads the upgrade request and never answers it
  drip        challenge, then an event every 100 ms forever, never hello-ok
  drip_rpc    hello-ok, then an event every 100 ms forever, never the answer
  refuse      answers the upgrade with HTTP 400

Standard library only; RFC 6455 text frames, server side (unmasked).
"""
import base64
import hashlib
import json
import socket
import struct
import sys
import threading
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
        if len(data) > 65536:
            return None
    return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")


def frame(payload, opcode=1):
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def send_json(conn, obj):
    conn.sendall(frame(json.dumps(obj).encode()))


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def recv_frame(conn):
    """One client frame (masked), as (opcode, payload)."""
    b0, b1 = recv_exact(conn, 2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", recv_exact(conn, 2))
    elif n == 127:
        (n,) = struct.unpack("!Q", recv_exact(conn, 8))
    mask = recv_exact(conn, 4) if b1 & 0x80 else b"\0\0\0\0"
    data = bytes(c ^ mask[i % 4] for i, c in enumerate(recv_exact(conn, n)))
    return b0 & 0x0F, data


def recv_req(conn):
    while True:
        opcode, data = recv_frame(conn)
        if opcode == 8:
            raise EOFError
        if opcode == 1:
            return json.loads(data)


def close(conn, code, reason):
    conn.sendall(frame(struct.pack("!H", code) + reason.encode(), opcode=8))


def drip(conn):
    for i in range(300):
        send_json(conn, {"type": "event", "event": "tick", "payload": {"i": i}})
        time.sleep(0.1)


def converse(conn, mode):
    if mode == "bad_json":
        conn.sendall(frame(b"this is not json"))
        return
    if mode == "binary":
        conn.sendall(frame(b"\x00\x01\x02", opcode=2))
        return
    if mode == "oversized":
        conn.sendall(struct.pack("!BBQ", 0x81, 127, 2 << 20) + b"{" * 4096)
        time.sleep(5)
        return
    if mode == "silent":
        time.sleep(30)
        return
    send_json(conn, {"type": "event", "event": "connect.challenge",
                     "payload": {"nonce": "n", "ts": int(time.time() * 1000)}})
    req = recv_req(conn)
    if mode == "drip":
        drip(conn)
        return
    if mode == "auth":
        send_json(conn, {"type": "res", "id": req["id"], "ok": False, "error": {
            "code": "INVALID_REQUEST",
            "message": "unauthorized: gateway token mismatch (provide gateway auth token)",
            "details": {"code": "AUTH_TOKEN_MISMATCH"}}})
        close(conn, 1008, "unauthorized: gateway token mismatch")
        return
    send_json(conn, {"type": "res", "id": req["id"], "ok": True,
                     "payload": {"type": "hello-ok", "protocol": 4}})
    req = recv_req(conn)
    if mode == "drip_rpc":
        drip(conn)
        return
    if mode == "rpc_error":
        send_json(conn, {"type": "res", "id": req["id"], "ok": False,
                         "error": {"code": "UNAVAILABLE", "message": "no"}})
    else:
        send_json(conn, {"type": "event", "event": "health", "payload": {"ok": True}})
        send_json(conn, {"type": "res", "id": req["id"], "ok": True, "payload": {"ok": True}})
    try:
        recv_req(conn)  # until the client closes
    except (EOFError, ValueError):
        pass


def serve(conn, mode):
    try:
        head = read_head(conn)
        if head is None:
            return
        lines = head.split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in
                   (l.split(":", 1) for l in lines[1:] if ":" in l)}
        if "websocket" not in headers.get("upgrade", "").lower():
            body = b'{"ok":true,"status":"live"}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            return
        if mode == "no_upgrade":
            time.sleep(30)
            return
        if mode == "refuse":
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        key = headers["sec-websocket-key"]
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept).encode())
        converse(conn, mode)
    except (OSError, EOFError, ValueError, KeyError):
        pass
    finally:
        conn.close()


def listen(sock, mode):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve, args=(conn, mode), daemon=True).start()


def main():
    for mode in sys.argv[1:]:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        print(mode, sock.getsockname()[1], flush=True)
        threading.Thread(target=listen, args=(sock, mode), daemon=True).start()
    print("ready", flush=True)
    # Ends when the test closes stdin (or dies).
    sys.stdin.read()


if __name__ == "__main__":
    main()
