// Types of the browser SDK (tracking.js), for a plugin's TypeScript build.

/** A value the plugin's config accepts for a key: per its `value_type` (number, boolean, string, url, image). */
export type TrackValue = string | number | boolean;

/** The seed's own call: `tracking.Event.track({key, value})`. */
export interface TrackCall {
  /** A key the plugin's published config declares. */
  key: string;
  /** Omitted for an `increment`. */
  value?: TrackValue;
  /** Another user than the one given to `init`. */
  user_id?: string;
}

export interface TrackingOptions {
  /** The API's base URL, e.g. `https://abc123.execute-api.eu-west-1.amazonaws.com/Prod`. */
  apiUrl: string;
  pluginId: string;
  /** The user the calls count for. */
  userId: string;
  /** Milliseconds a call waits for others to join its batch (default 1000). */
  flushInterval?: number;
  /** Where unsent calls are kept (default `localStorage`; `null`: memory only). */
  storage?: Pick<Storage, "getItem" | "setItem" | "removeItem"> | null;
  /** The fetch to send with (default the page's). */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
  /** The page whose `pagehide`, `online` and `visibilitychange` the SDK listens to (default `window`; `null`: none). */
  window?: PageEvents | null;
}

/** What of a page the SDK listens to: `pagehide`, `online`, and its document's `visibilitychange`. */
export interface PageEvents {
  addEventListener(type: string, listener: () => void): void;
  document?: { visibilityState: string; addEventListener(type: string, listener: () => void): void };
}

export interface TrackingClient {
  Event: {
    /** Queue one call; it is sent in a batch within `flushInterval`, retried until acknowledged. */
    track(call: TrackCall): void;
  };
  /** Send what is queued now. */
  flush(): Promise<void>;
  /** Calls not yet acknowledged. */
  pending(): number;
}

export declare function init(options: TrackingOptions): TrackingClient;
export declare const Tracking: { init: typeof init };
export default Tracking;
