// Drives the example gateway with the official TypeScript MCP SDK client.
//
// Reads a plan as JSON on stdin:
//   { "url": "http://127.0.0.1:PORT/mcp",
//     "sessions": [ { "label": "alice", "token": "...", "listTools": true,
//                     "calls": [ { "name": "echo", "arguments": { ... } } ] } ],
//     "raw": [ { "label": "...", "body": { JSON-RPC request } } ],
//     "flood": { "requests": 400, "concurrency": 16, "bodies": [ ... ], "tokens": [ ... ] } }
// A session whose token is null connects without an Authorization header.
// A call may ask for "progress": true (an onprogress handler: the SDK sends a
// progress token and the notifications are returned) or "abortAfterMs": N
// (an AbortController aborts it: the SDK sends notifications/cancelled).
// "raw" requests are POSTed as they are, without a token. The "flood" runs
// while the sessions do: unauthenticated POSTs cycling through bodies and
// tokens ("" = no Authorization header); its count of 401s is returned.
//
// Writes what happened as JSON on stdout, one entry per session and call.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function describeError(e) {
  return { error: String(e && e.message ? e.message : e), code: e && typeof e.code === "number" ? e.code : null };
}

async function runSession(url, s) {
  const out = { label: s.label, calls: [] };
  const headers = {};
  if (s.token) headers["Authorization"] = `Bearer ${s.token}`;
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  const client = new Client({ name: "otelaudit-e2e-ts", version: "1.0.0" });
  try {
    await client.connect(transport);
  } catch (e) {
    out.connectError = describeError(e);
    return out;
  }
  try {
    if (s.listTools) {
      const res = await client.listTools();
      out.tools = res.tools.map((t) => t.name);
    }
    for (const c of s.calls || []) {
      const r = { name: c.name };
      const opts = {};
      if (c.progress) {
        r.progress = [];
        opts.onprogress = (p) => r.progress.push(p);
      }
      if (c.abortAfterMs) {
        const ac = new AbortController();
        setTimeout(() => ac.abort(new Error("aborted by the test")), c.abortAfterMs);
        opts.signal = ac.signal;
      }
      try {
        const res = await client.callTool({ name: c.name, arguments: c.arguments || {} }, undefined, opts);
        r.ok = !res.isError;
        r.isError = !!res.isError;
        r.text = (res.content || []).filter((x) => x.type === "text").map((x) => x.text).join("\n");
      } catch (e) {
        Object.assign(r, { ok: false }, describeError(e));
      }
      out.calls.push(r);
    }
  } finally {
    await client.close();
  }
  return out;
}

async function runRaw(url, r) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" },
    body: JSON.stringify(r.body),
  });
  await res.text();
  return { label: r.label, status: res.status };
}

async function runFlood(url, f) {
  let next = 0;
  const out = { sent: 0, status401: 0, other: {} };
  async function worker() {
    for (;;) {
      const i = next++;
      if (i >= f.requests) return;
      const headers = { "Content-Type": "application/json", Accept: "application/json, text/event-stream" };
      const token = f.tokens[i % f.tokens.length];
      if (token) headers["Authorization"] = `Bearer ${token}`;
      if (f.sessionId) headers["Mcp-Session-Id"] = f.sessionId;
      try {
        const res = await fetch(url, { method: "POST", headers, body: f.bodies[i % f.bodies.length] });
        await res.text();
        out.sent++;
        if (res.status === 401) out.status401++;
        else out.other[res.status] = (out.other[res.status] || 0) + 1;
      } catch (e) {
        out.other["error"] = (out.other["error"] || 0) + 1;
      }
    }
  }
  await Promise.all(Array.from({ length: f.concurrency || 8 }, worker));
  return out;
}

const plan = await readStdin();
const result = { sessions: [], raw: [] };
const flood = plan.flood ? runFlood(plan.url, plan.flood) : Promise.resolve(null);
for (const s of plan.sessions || []) result.sessions.push(await runSession(plan.url, s));
result.flood = await flood;
for (const r of plan.raw || []) result.raw.push(await runRaw(plan.url, r));
process.stdout.write(JSON.stringify(result, null, 2) + "\n");
