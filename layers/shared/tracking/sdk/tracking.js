// The browser SDK of the event-tracking service: a plugin's page calls the seed's own
// Tracking.Event.track({key, value}); the SDK batches the calls to the plugin's batch route,
// retries 503, 429 (after Retry-After) and network errors with backoff, keeps unsent calls in
// localStorage across reloads, and flushes on pagehide with fetch(..., {keepalive: true}).
// Every call carries a message_id, so a call sent twice (a retry whose answer was lost, two tabs,
// a reload) is counted once. No dependencies. Types: tracking.d.ts.

const MAX_CALLS = 100; // the route's batch limit
const MAX_BYTES = 45000; // the route takes 50,000 bytes; keepalive bodies are capped at 64 KiB
const QUEUE_MAX = 1000; // calls kept unsent at most (the oldest go first past it)
const BACKOFF_MAX_MS = 30000;
const RETRIED = [408, 429, 500, 502, 503, 504];
const encoder = new TextEncoder();

function newId() {
  const c = globalThis.crypto;
  if (c && c.randomUUID) return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && c.getRandomValues) c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// The unsent calls: in storage while it works (shared by the origin's tabs, kept across reloads),
// else in memory.
function queueIn(storage, name) {
  let memory = [];
  let durable = !!storage;
  return {
    read() {
      if (durable) {
        try {
          const raw = storage.getItem(name);
          return raw ? JSON.parse(raw) : [];
        } catch (e) {
          durable = false;
        }
      }
      return memory.slice();
    },
    write(calls) {
      memory = calls.slice(-QUEUE_MAX);
      if (!durable) return;
      try {
        if (memory.length) storage.setItem(name, JSON.stringify(memory));
        else storage.removeItem(name);
      } catch (e) {
        durable = false; // full or refused: the calls stay in memory
      }
    },
  };
}

function defaultStorage() {
  try {
    return globalThis.localStorage || null;
  } catch (e) {
    return null; // a sandboxed frame
  }
}

export function init(options) {
  const { apiUrl, pluginId, userId } = options || {};
  if (!apiUrl || !pluginId || !userId) throw new TypeError("Tracking.init needs apiUrl, pluginId and userId");
  const send = options.fetch || ((url, request) => globalThis.fetch(url, request));
  const wait = options.flushInterval === undefined ? 1000 : options.flushInterval;
  const url = String(apiUrl).replace(/\/+$/, "") + "/v1/plugins/" + encodeURIComponent(pluginId) + "/track";
  const queue = queueIn(options.storage === undefined ? defaultStorage() : options.storage, "tracking:" + pluginId);
  let timer = null;
  let sending = false;
  let failures = 0;
  let notBefore = 0;

  function schedule(ms) {
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      flush();
    }, ms);
  }

  function batchOf(calls) {
    const batch = [];
    let size = 12;
    for (const call of calls) {
      const bytes = encoder.encode(JSON.stringify(call)).length + 1;
      if (batch.length === MAX_CALLS || (batch.length && size + bytes > MAX_BYTES)) break;
      batch.push(call);
      size += bytes;
    }
    return batch;
  }

  function remove(ids) {
    queue.write(queue.read().filter((call) => !ids.has(call.message_id)));
  }

  function request(batch, keepalive) {
    return send(url, {
      method: "POST",
      // text/plain: a simple request, no CORS preflight (and keepalive allows no preflight)
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      body: JSON.stringify({ events: batch }),
      credentials: "omit",
      keepalive,
    });
  }

  function backoff(retryAfter) {
    failures += 1;
    const base = Math.min(BACKOFF_MAX_MS, 1000 * 2 ** (failures - 1));
    const seconds = Number(retryAfter);
    const asked = retryAfter !== null && retryAfter !== "" && seconds >= 0 ? seconds * 1000 : 0;
    return Math.max(base / 2 + (Math.random() * base) / 2, asked);
  }

  // A refusal no retry can mend: the calls it names are dropped, the others sent again at once.
  async function refused(answer, batch) {
    let named = [];
    try {
      const details = (await answer.json()).error.details || [];
      named = details.map((d) => /^events\[(\d+)\]/.exec(d.field || "")).filter(Boolean);
    } catch (e) {
      named = [];
    }
    const bad = named.length ? new Set(named.map((m) => batch[Number(m[1])])) : new Set(batch);
    console.warn("tracking: calls refused", answer.status, [...bad].map((call) => call.key));
    remove(new Set([...bad].filter(Boolean).map((call) => call.message_id)));
  }

  async function flush() {
    if (sending) return;
    const now = Date.now();
    if (now < notBefore) return schedule(notBefore - now);
    const batch = batchOf(queue.read());
    if (!batch.length) return;
    sending = true;
    let retryIn = null;
    try {
      const answer = await request(batch, false);
      if (answer.ok) {
        remove(new Set(batch.map((call) => call.message_id)));
        failures = 0;
      } else if (RETRIED.includes(answer.status)) {
        retryIn = backoff(answer.headers.get("Retry-After"));
      } else {
        await refused(answer, batch);
      }
    } catch (e) {
      retryIn = backoff(null); // offline, or the connection dropped: the calls stay queued
    } finally {
      sending = false;
    }
    if (retryIn !== null) {
      notBefore = Date.now() + retryIn;
      schedule(retryIn);
    } else if (queue.read().length) {
      schedule(0);
    }
  }

  // The page is going away: one keepalive request with what is queued. The calls stay queued until
  // acknowledged, so a page that comes back sends them again (once counted, whatever arrives twice).
  function leaving() {
    const batch = batchOf(queue.read());
    if (!batch.length) return;
    request(batch, true).then(
      (answer) => answer.ok && remove(new Set(batch.map((call) => call.message_id))),
      () => {},
    );
  }

  function track(call) {
    if (!call || typeof call.key !== "string" || !call.key) throw new TypeError("track needs {key, value}");
    const entry = { key: call.key, user_id: call.user_id || userId, message_id: newId() };
    if (call.value !== undefined) entry.value = call.value;
    const calls = queue.read();
    calls.push(entry);
    queue.write(calls);
    if (calls.length >= MAX_CALLS) flush();
    else schedule(wait);
  }

  const page = options.window === undefined ? globalThis.window : options.window;
  if (page && page.addEventListener) {
    page.addEventListener("pagehide", leaving);
    page.addEventListener("online", () => {
      notBefore = 0;
      flush();
    });
    if (page.document) {
      page.document.addEventListener("visibilitychange", () => {
        if (page.document.visibilityState === "hidden") leaving();
      });
    }
  }
  if (queue.read().length) schedule(0); // what an earlier page left unsent

  return {
    Event: { track },
    flush,
    pending: () => queue.read().length,
  };
}

export const Tracking = { init };
export default Tracking;
