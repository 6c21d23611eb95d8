// Make a running real OpenClaw gateway's RPC dispatcher swallow requests,
// or stop doing so, through the Node inspector (tests/real_gateway_rpc.rs).
//
//   node rpc-fault.mjs INSPECTOR_PORT on|off OPENCLAW_REAL_DIR
//
// Needs a Node with a global WebSocket (22+): the gateway's own Node 26.
// Open the inspector first with `kill -USR1 <gateway pid>` (never SIGUSR2:
// the gateway restarts on it).
//
// The fault: the gateway's WebSocket server reads each connection's frames
// with the `ws` package, and its handler (dist/message-handler-*.mjs,
// attachGatewayWsMessageHandler: socket.on("message", onMessage)) dispatches
// every request. Server-side sockets of `ws` (lib/websocket.js, `_isServer`)
// then drop every "message" that is a request other than `connect`: the
// handshake still completes, but no method (health, status, ...) is ever
// answered. The HTTP server, /healthz included, is untouched.
const [port, action, realDir] = process.argv.slice(2);
const wsPath = `${realDir}/node_modules/ws/lib/websocket.js`;
const on = `(() => {
  const WS = require(${JSON.stringify(wsPath)});
  if (WS.prototype.__rpcFault) return "already on";
  const emit = WS.prototype.emit;
  WS.prototype.emit = function (event, data, ...rest) {
    if (event === "message" && this._isServer) {
      try {
        const frame = JSON.parse(String(data));
        if (frame && frame.type === "req" && frame.method !== "connect") return true;
      } catch {}
    }
    return emit.call(this, event, data, ...rest);
  };
  WS.prototype.__rpcFault = true;
  return "on";
})()`;
const off = `(() => {
  const WS = require(${JSON.stringify(wsPath)});
  if (!WS.prototype.__rpcFault) return "already off";
  delete WS.prototype.emit;
  delete WS.prototype.__rpcFault;
  return "off";
})()`;
const expression = { on, off }[action];
if (!expression) {
  console.error("usage: rpc-fault.mjs PORT on|off OPENCLAW_REAL_DIR");
  process.exit(2);
}

const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
const timer = setTimeout(() => {
  console.error("no answer from the inspector");
  process.exit(1);
}, 10000);
ws.onopen = () =>
  ws.send(JSON.stringify({
    id: 1,
    method: "Runtime.evaluate",
    params: { expression, includeCommandLineAPI: true, returnByValue: true },
  }));
ws.onmessage = (m) => {
  const reply = JSON.parse(String(m.data));
  if (reply.id !== 1) return;
  clearTimeout(timer);
  ws.close();
  const value = reply.result?.result?.value;
  if (value === undefined) {
    console.error(JSON.stringify(reply));
    process.exit(1);
  }
  console.log(value);
};
