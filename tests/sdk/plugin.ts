// What a plugin's page writes, checked against the SDK's types (tracking.d.ts) by tests/unit/test_sdk.py.
import Tracking, { init, type TrackCall } from "../../layers/shared/tracking/sdk/tracking.js";

const tracking = Tracking.init({
  apiUrl: "https://abc123.execute-api.eu-west-1.amazonaws.com/Prod",
  pluginId: "emoji-plugin",
  userId: "participant-42",
});
tracking.Event.track({ key: "emoji-reactions", value: "joy" });
tracking.Event.track({ key: "handouts" });
const call: TrackCall = { key: "score", value: 3, user_id: "participant-7" };
tracking.Event.track(call);
const quiet = init({
  apiUrl: "https://api.example.com",
  pluginId: "p",
  userId: "u",
  storage: null,
  window,
  fetch: (url, request) => fetch(url, request),
});
void quiet.flush().then(() => quiet.pending());
// @ts-expect-error: a call needs its key
tracking.Event.track({ value: "joy" });
// @ts-expect-error: a value is a string, a number or a boolean
tracking.Event.track({ key: "k", value: { nested: true } });
// @ts-expect-error: init needs the user
Tracking.init({ apiUrl: "https://api.example.com", pluginId: "p" });
