// The public API as the page uses it: reads with a deadline (a frozen node must not freeze the page),
// admin commands with the token, and the two dialogs (confirmation, token).
//
// The admin token is asked once per browser tab and kept in sessionStorage: it lives until the tab
// closes or "Forget token" is pressed, is sent only in the Authorization header of commands to this
// page's own server, and is never written into the page, a URL or a log.

const TOKEN_KEY = "hotstandby.admin-token";
export const READ_TIMEOUT_MS = 2000;

const $ = (id) => document.getElementById(id);

/** GET ``url`` as JSON (or text), failing after READ_TIMEOUT_MS. */
export async function read(url, { text = false } = {}) {
  const r = await fetch(url, { cache: "no-store", signal: AbortSignal.timeout(READ_TIMEOUT_MS) });
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  return text ? r.text() : r.json();
}

const listeners = new Set();
export const token = {
  present: () => Boolean(sessionStorage.getItem(TOKEN_KEY)),
  forget() { sessionStorage.removeItem(TOKEN_KEY); listeners.forEach((f) => f()); },
  onChange(f) { listeners.add(f); },
};

function closed(dialog) {
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true }));
}

// Cancel buttons close their dialog without submitting (Enter in a field then means OK, not Cancel).
document.querySelectorAll("dialog [data-cancel]").forEach((b) =>
  b.addEventListener("click", () => b.closest("dialog").close("cancel")));

async function askToken(why) {
  const dialog = $("token-dialog"), input = $("token-input");
  $("token-why").textContent = why;
  input.value = "";
  dialog.returnValue = "";
  dialog.showModal();
  const answer = await closed(dialog);
  const value = input.value.trim();
  input.value = ""; // never left in the page
  if (answer !== "ok" || !value) return null;
  sessionStorage.setItem(TOKEN_KEY, value);
  listeners.forEach((f) => f());
  return value;
}

/** Ask the operator to confirm; resolves true only on the OK button (Cancel has the focus first). */
export async function confirmAction(title, text, ok) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = ok;
  dialog.returnValue = "";
  dialog.showModal();
  return (await closed(dialog)) === "ok";
}

/** The server's reason, whatever shape the refusal has (``detail`` text, or 422's list and ``message``). */
export function reasonOf(body, status) {
  if (body && typeof body.message === "string") return body.message;
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  return `HTTP ${status}`;
}

/** One admin command to this page's own server. The token is asked when there is none, and again
 * once if the server refuses it (401). Resolves {ok, status, body, reason}; never throws. */
export async function command(method, path, body, { timeoutMs = 15000 } = {}) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const tok = sessionStorage.getItem(TOKEN_KEY) || await askToken(attempt
      ? "The server refused that token (401). Type the admin token again."
      : "This command needs the administrator's token (HS_ADMIN_TOKEN of this server).");
    if (!tok) return { ok: false, status: 0, body: null, reason: "cancelled: no admin token given" };
    let r;
    try {
      r = await fetch(path, {
        method, cache: "no-store", signal: AbortSignal.timeout(timeoutMs),
        headers: { "content-type": "application/json", authorization: `Bearer ${tok}` },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      return { ok: false, status: 0, body: null, reason: `no answer from this server (${e.name})` };
    }
    if (r.status === 401) { token.forget(); continue; }
    const data = await r.json().catch(() => null);
    return { ok: r.ok, status: r.status, body: data, reason: r.ok ? "" : reasonOf(data, r.status) };
  }
  return { ok: false, status: 401, body: null, reason: "the admin token was refused" };
}
