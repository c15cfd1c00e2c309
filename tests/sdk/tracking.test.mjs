// The browser SDK's own tests (node --test): a fake fetch answers as the API would, a fake
// localStorage survives a "reload" (a second init on the same storage), and mocked timers stand in
// for the batching delay and the backoff.
import assert from "node:assert/strict";
import { afterEach, beforeEach, mock, test } from "node:test";

import Tracking, { Tracking as Named, init } from "../../layers/shared/tracking/sdk/tracking.js";

const API = "https://api.example.com/Prod/";
const URL = "https://api.example.com/Prod/v1/plugins/emoji-plugin/track";

class Storage {
  constructor() {
    this.items = new Map();
  }
  getItem(name) {
    return this.items.has(name) ? this.items.get(name) : null;
  }
  setItem(name, value) {
    this.items.set(name, String(value));
  }
  removeItem(name) {
    this.items.delete(name);
  }
}

class Page {
  constructor() {
    this.listeners = {};
    this.document = { visibilityState: "visible", addEventListener: (n, f) => this.on(n, f) };
  }
  addEventListener(name, listener) {
    this.on(name, listener);
  }
  on(name, listener) {
    (this.listeners[name] ||= []).push(listener);
  }
  fire(name) {
    for (const listener of this.listeners[name] || []) listener();
  }
}

// A fetch that records every request and answers from a script (one answer per request; the last
// one repeats): a status with headers and a body, or "drop" (the connection fails).
function api(...script) {
  const requests = [];
  const fetch = async (url, request) => {
    requests.push({ url, ...request, calls: JSON.parse(request.body).events });
    const answer = script.length > 1 ? script.shift() : script[0];
    if (answer === "drop") throw new TypeError("Failed to fetch");
    const { status = 200, headers = {}, body = { success: true } } = answer;
    return {
      ok: status >= 200 && status < 300,
      status,
      headers: { get: (name) => (name in headers ? headers[name] : null) },
      json: async () => body,
    };
  };
  return { fetch, requests };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

async function advance(ms) {
  mock.timers.tick(ms);
  for (let i = 0; i < 5; i++) await settle();
}

beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_764_016_800_000 }));
afterEach(() => mock.timers.reset());

function client(server, storage = new Storage(), page = new Page()) {
  const options = { apiUrl: API, pluginId: "emoji-plugin", userId: "participant-42" };
  return init({ ...options, fetch: server.fetch, storage, window: page });
}

test("exports Tracking, named and default, and refuses an init without its three options", () => {
  assert.equal(Tracking, Named);
  assert.equal(Tracking.init, init);
  assert.throws(() => init({ apiUrl: API, pluginId: "p" }), TypeError);
});

test("the seed's call is batched after a second to the plugin's batch route, each with a message_id", async () => {
  const server = api({ status: 200 });
  const tracking = client(server);
  tracking.Event.track({ key: "emoji-reactions", value: "joy" });
  tracking.Event.track({ key: "handouts" });
  assert.equal(server.requests.length, 0);
  await advance(1000);
  const [sent] = server.requests;
  assert.equal(server.requests.length, 1);
  assert.equal(sent.url, URL);
  assert.equal(sent.method, "POST");
  assert.equal(sent.headers["Content-Type"], "text/plain;charset=UTF-8"); // no preflight
  assert.deepEqual(
    sent.calls.map(({ message_id, ...call }) => call),
    [
      { key: "emoji-reactions", value: "joy", user_id: "participant-42" },
      { key: "handouts", user_id: "participant-42" },
    ],
  );
  assert.equal(new Set(sent.calls.map((call) => call.message_id)).size, 2);
  assert.equal(tracking.pending(), 0);
});

test("a hundred calls go at once, the rest in the next request", async () => {
  const server = api({ status: 200 });
  const tracking = client(server);
  for (let n = 0; n < 150; n++) tracking.Event.track({ key: "score", value: n });
  await advance(0);
  await advance(1000);
  assert.deepEqual(server.requests.map((r) => r.calls.length), [100, 50]);
  assert.deepEqual(server.requests.flatMap((r) => r.calls.map((c) => c.value)), [...Array(150).keys()]);
});

test("a 503 is retried with the same message_ids, not before its Retry-After", async () => {
  const server = api({ status: 503, headers: { "Retry-After": "5" } }, { status: 200 });
  const tracking = client(server);
  tracking.Event.track({ key: "emoji-reactions", value: "joy" });
  await advance(1000);
  await advance(4900);
  assert.equal(server.requests.length, 1);
  await advance(100);
  assert.equal(server.requests.length, 2);
  assert.deepEqual(server.requests[1].calls, server.requests[0].calls);
  assert.equal(tracking.pending(), 0);
});

test("a dropped connection and a 429 are retried with growing backoff until the API answers", async () => {
  const server = api("drop", "drop", { status: 429, headers: { "Retry-After": "2" } }, "drop", { status: 200 });
  const tracking = client(server);
  tracking.Event.track({ key: "emoji-reactions", value: "joy" });
  await advance(1000);
  for (let second = 0; second < 30 && tracking.pending(); second++) await advance(1000);
  assert.equal(server.requests.length, 5);
  assert.equal(new Set(server.requests.map((r) => r.calls[0].message_id)).size, 1);
  assert.equal(tracking.pending(), 0);
});

test("calls left unsent survive a reload and go with their first message_ids", async () => {
  const storage = new Storage();
  const down = api("drop");
  client(down, storage).Event.track({ key: "emoji-reactions", value: "joy" });
  await advance(1000);
  const first = down.requests[0].calls[0].message_id;
  const server = api({ status: 200 });
  const reloaded = client(server, storage);
  assert.equal(reloaded.pending(), 1);
  await advance(0);
  assert.equal(server.requests[0].calls[0].message_id, first);
  assert.equal(reloaded.pending(), 0);
  assert.equal(storage.getItem("tracking:emoji-plugin"), null);
});

test("pagehide sends what is queued with keepalive; a page that comes back sends what was not acknowledged", async () => {
  const storage = new Storage();
  const page = new Page();
  const server = api("drop");
  client(server, storage, page).Event.track({ key: "emoji-reactions", value: "joy" });
  page.fire("pagehide");
  await settle();
  assert.equal(server.requests.length, 1);
  assert.equal(server.requests[0].keepalive, true);
  assert.ok(storage.getItem("tracking:emoji-plugin")); // still queued: no answer came
  page.document.visibilityState = "hidden";
  page.fire("visibilitychange");
  await settle();
  assert.equal(server.requests.length, 2);
});

test("a refused call is dropped and its neighbours sent again; an unknown refusal drops the batch", async () => {
  const refusal = {
    status: 422,
    body: { success: false, error: { code: "VALIDATION", details: [{ field: "events[1].key", message: "no" }] } },
  };
  const server = api(refusal, { status: 200 });
  const tracking = client(server);
  const warn = mock.method(console, "warn", () => {});
  for (const key of ["a", "undeclared", "c"]) tracking.Event.track({ key });
  await advance(1000);
  await advance(0);
  assert.deepEqual(server.requests.map((r) => r.calls.map((c) => c.key)), [["a", "undeclared", "c"], ["a", "c"]]);
  const gone = api({ status: 403, body: { success: false, error: { code: "FORBIDDEN" } } });
  const other = client(gone);
  other.Event.track({ key: "a" });
  await advance(1000);
  assert.equal(other.pending(), 0);
  assert.equal(warn.mock.callCount(), 2);
});

test("without a working localStorage the calls are kept in memory and still sent", async () => {
  const full = { getItem: () => null, setItem: () => { throw new Error("QuotaExceededError"); }, removeItem() {} };
  const server = api({ status: 200 });
  const tracking = client(server, full);
  tracking.Event.track({ key: "emoji-reactions", value: "joy" });
  assert.equal(tracking.pending(), 1);
  await advance(1000);
  assert.equal(server.requests[0].calls.length, 1);
  assert.equal(tracking.pending(), 0);
});

test("coming back online sends at once, without waiting out the backoff", async () => {
  const page = new Page();
  const server = api("drop", "drop", "drop", { status: 200 });
  const tracking = client(server, new Storage(), page);
  tracking.Event.track({ key: "emoji-reactions", value: "joy" });
  for (let second = 0; second < 5; second++) await advance(1000);
  const before = server.requests.length;
  assert.ok(tracking.pending());
  page.fire("online");
  await advance(0);
  assert.ok(server.requests.length > before);
});
