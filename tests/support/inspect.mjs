// Evaluate JavaScript inside a running Node process through its inspector.
//
//   node inspect.mjs INSPECTOR_PORT EXPRESSION
//
// The process must have its inspector open (`kill -USR1 <pid>` opens it on
// 127.0.0.1, on the port of `--inspect-port`, 9229 by default). The
// expression is evaluated with Runtime.evaluate in the process's main
// context; a promise is awaited. Prints the value, as JSON, on stdout; exits
// 1 with the exception on stderr. Needs Node's global WebSocket (Node >= 22;
// the real gateway's own Node 26 has it).
const [port, expression] = process.argv.slice(2);
const deadline = Date.now() + 20_000;
let targets;
for (;;) {
  try {
    targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    break;
  } catch (e) {
    if (Date.now() > deadline) throw e;
    await new Promise((r) => setTimeout(r, 200));
  }
}
const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
const timer = setTimeout(() => {
  console.error("inspect: no answer in 20 s");
  process.exit(1);
}, 20_000);
ws.onopen = () =>
  ws.send(
    JSON.stringify({
      id: 1,
      method: "Runtime.evaluate",
      params: { expression, awaitPromise: true, returnByValue: true },
    }),
  );
ws.onmessage = (m) => {
  const msg = JSON.parse(m.data);
  if (msg.id !== 1) return;
  clearTimeout(timer);
  ws.close();
  const r = msg.result ?? {};
  if (msg.error || r.exceptionDetails) {
    console.error(JSON.stringify(msg.error ?? r.exceptionDetails));
    process.exit(1);
  }
  console.log(JSON.stringify(r.result?.value ?? null));
  process.exit(0);
};
