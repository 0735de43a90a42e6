// The public API, as the portal uses it. The session lives in HttpOnly cookies the server
// sets (`X-ZLH-Session: cookie`), so no script on the page ever holds a token; the page keeps
// only who is signed in (for the menu). An expired access cookie is refreshed silently; a
// session that cannot be refreshed sends the person to sign-in.

const KEY = 'zlh.user';

/** Every request says it comes from the portal: the server accepts the session cookie only so. */
const PORTAL = { 'x-zlh-session': 'cookie' };

/** An error answered by the API: status, stable code, message for people. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** What to do next, for the codes where the message alone does not say. */
const NEXT = {
  agent_unreachable: 'The server\'s agent is not answering. It is restarted automatically; try again in a minute.',
  agent_timeout: 'The server is busy. Try again in a moment.',
  agent_error: 'Try again; if it keeps failing, tell the operator.',
  provisioning_failed: 'Nothing was left half-created. Try again, or pick another template or version.',
  no_free_ports: 'Every game port of this host is in use. Delete a server you no longer need, or ask the operator.',
  provisioning_timeout: 'Nothing was left half-created. Try again; if it keeps happening, tell the operator.',
  backup_in_progress: 'Wait until the running backup or restore has finished.',
  insufficient_storage: 'Free some space (delete old backups or files) and try again.',
  payload_too_large: 'The file is larger than this server accepts.',
  rate_limited: 'Too many attempts. Wait a minute and try again.',
  internal: 'Try again; if it keeps failing, tell the operator.',
};

export function nextStep(error) {
  return error instanceof ApiError ? NEXT[error.code] : 'Check your connection and try again.';
}

/** Who is signed in, as the last sign-in or refresh said (no secret: the tokens are cookies). */
export const session = {
  user() {
    try {
      return JSON.parse(localStorage.getItem(KEY));
    } catch {
      return null;
    }
  },
  set(answer) {
    localStorage.setItem(KEY, JSON.stringify(answer.user));
  },
  clear() {
    localStorage.removeItem(KEY);
  },
};

/** Called when the session is over (refresh refused): the app sends the person to sign-in. */
let onSignedOut = () => {};
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

let refreshing = null;

/** 401 codes that mean the access cookie is missing or stale (not a wrong password or code). */
const SESSION_OVER = new Set(['unauthorized', 'token_expired', 'token_invalid']);

/** Exchanges the refresh cookie for new cookies; one exchange at a time. */
async function refresh() {
  refreshing ??= (async () => {
    const response = await fetch('/api/auth/refresh', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...PORTAL },
      body: '{}',
    });
    if (!response.ok) {
      session.clear();
      throw new ApiError(401, 'session_ended', 'Your session has ended. Sign in again.');
    }
    session.set(await response.json());
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function errorOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body?.error?.code) return new ApiError(response.status, body.error.code, body.error.message);
  } catch {
    // Not our envelope: a proxy in between, or a crash.
  }
  return new ApiError(response.status, 'http_' + response.status, `The request failed (${response.status}).`);
}

/**
 * Calls the API. `body` is sent as JSON, or as is when it is a Blob/File. Answers are JSON
 * (backups' `{ok, data}` envelope unwrapped), text, or a Response with `{raw: true}`.
 */
export async function api(method, path, body, { raw = false } = {}) {
  const send = () => {
    const headers = { ...PORTAL };
    let payload;
    if (body instanceof Blob) {
      payload = body;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    return fetch(path, { method, headers, body: payload });
  };
  let response = await send();
  if (response.status === 401 && session.user() && path !== '/api/auth/refresh') {
    const error = await errorOf(response.clone());
    if (SESSION_OVER.has(error.code)) {
      try {
        await refresh();
      } catch (ended) {
        onSignedOut(ended);
        throw ended;
      }
      response = await send();
    }
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && session.user() && SESSION_OVER.has(error.code)) {
      session.clear();
      onSignedOut(error);
    }
    throw error;
  }
  if (raw) return response;
  const text = await response.text();
  if (!text) return null;
  const value = JSON.parse(text);
  return value && typeof value === 'object' && 'ok' in value && 'data' in value ? value.data : value;
}

/** Makes sure the access token is fresh before something that cannot retry (an upload). */
export async function freshSession() {
  await api('GET', '/api/auth/me');
}

/**
 * Uploads a file with progress (`onProgress(sent, total)`), through XHR because fetch
 * cannot report upload progress.
 */
export async function upload(path, file, onProgress, signal) {
  await freshSession();
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    // Cancelling aborts the request: the agent writes to a temporary file and keeps nothing.
    signal?.addEventListener('abort', () => request.abort());
    request.addEventListener('abort', () => reject(new ApiError(0, 'cancelled', 'The upload was cancelled; nothing was kept.')));
    request.open('PUT', path);
    request.setRequestHeader('x-zlh-session', PORTAL['x-zlh-session']);
    request.upload.addEventListener('progress', (event) => onProgress(event.loaded, event.total));
    request.addEventListener('load', () => {
      if (request.status >= 200 && request.status < 300) {
        resolve();
        return;
      }
      try {
        const body = JSON.parse(request.responseText);
        reject(new ApiError(request.status, body.error.code, body.error.message));
      } catch {
        reject(new ApiError(request.status, `http_${request.status}`, `The upload failed (${request.status}).`));
      }
    });
    request.addEventListener('error', () => reject(new ApiError(0, 'network', 'The upload was interrupted.')));
    request.send(file);
  });
}

/** Downloads a file the way a browser does, with the session's token. */
export async function download(path, name) {
  const response = await api('GET', path, undefined, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Waits for a server's job to end, reporting progress; resolves to the ended job. */
export async function followJob(serverId, job, onProgress) {
  let current = job;
  while (current.state === 'running') {
    onProgress(current);
    await new Promise((resolve) => setTimeout(resolve, 300));
    current = await api('GET', `/api/servers/${serverId}/jobs/${current.id}`);
  }
  onProgress(current);
  if (current.state === 'failed') throw new ApiError(500, 'job_failed', current.message || 'It failed.');
  return current;
}
