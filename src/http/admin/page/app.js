// The admin page: a thin client of /admin/session and /admin/v1. It builds every node with
// createElement and textContent (never HTML strings), so nothing an answer holds can run as code,
// and the Content-Security-Policy allows only this file as script anyway.
"use strict";

const $ = (id) => document.getElementById(id);

const state = { csrf: "", role: "", customer: null, settings: null, etag: "", fields: [] };

// One request to the API. Changes carry the session's CSRF token; a 401 means the session ended.
async function api(method, path, body, headers) {
  const h = Object.assign({ Accept: "application/json" }, headers || {});
  if (method !== "GET" && method !== "HEAD" && state.csrf) {
    h["X-CSRF-Token"] = state.csrf;
  }
  let payload;
  if (body !== undefined) {
    if (!h["Content-Type"]) h["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers: h, body: payload, credentials: "same-origin", cache: "no-store" });
  } catch (e) {
    return { status: 0, ok: false, data: { message: "the server could not be reached" }, headers: new Headers() };
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = { message: text.slice(0, 200) }; }
  }
  if (res.status === 401 && path.startsWith("/admin/v1/")) {
    showLogin("Your session has ended: log in again.");
  }
  return { status: res.status, ok: res.ok, data, headers: res.headers };
}

function problem(res) {
  if (res.status === 404 && res.data && res.data.error === "not-found" && res.data.message === "no such admin resource") {
    return "this server does not offer that yet (404)";
  }
  return (res.data && res.data.message) || "the server answered " + res.status;
}

function say(el, text, kind) {
  el.textContent = text;
  el.classList.remove("good", "bad");
  if (kind) el.classList.add(kind);
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "text") node.textContent = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

// ---- Session ----------------------------------------------------------------------------------

function showLogin(message) {
  state.csrf = "";
  state.role = "";
  $("app").hidden = true;
  $("who").hidden = true;
  $("logout").hidden = true;
  $("login-screen").hidden = false;
  say($("login-status"), message || "", message ? "bad" : "");
  $("login-token").focus();
}

function enter(session) {
  state.csrf = session.csrf_token;
  state.role = session.role;
  $("login-screen").hidden = true;
  $("login-token").value = "";
  say($("login-status"), "");
  $("who").textContent = "Logged in as " + session.name + " (" + session.role + ")";
  $("who").hidden = false;
  $("logout").hidden = false;
  $("app").hidden = false;
  const readOnly = session.role !== "admin";
  $("read-only").hidden = !readOnly;
  for (const b of document.querySelectorAll("[data-needs=admin]")) b.disabled = readOnly;
  show("customers");
}

async function login(ev) {
  ev.preventDefault();
  const token = $("login-token").value.trim();
  if (!token) return;
  say($("login-status"), "Logging in…");
  const res = await api("POST", "/admin/session", { token });
  if (res.ok && res.data) enter(res.data);
  else {
    say($("login-status"), problem(res), "bad");
    $("login-token").select();
  }
}

async function logout() {
  await api("DELETE", "/admin/session");
  showLogin("Logged out.");
}

// ---- Screens ----------------------------------------------------------------------------------

function show(name) {
  for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== name;
  for (const t of document.querySelectorAll(".tab")) {
    if (t.dataset.screen === name) t.setAttribute("aria-current", "page");
    else t.removeAttribute("aria-current");
  }
  if (name === "settings" && !state.settings) loadSettings();
  if (name === "history") loadHistory();
  const heading = $(name + "-title");
  if (heading) heading.focus();
}

// ---- Customers --------------------------------------------------------------------------------

function customerPath(suffix) {
  return "/admin/v1/customers/" + encodeURIComponent(state.customerId) + (suffix || "");
}

function detail(list, term, value) {
  list.append(el("dt", { text: term }), el("dd", { text: value }));
}

function renderCustomer(c) {
  state.customer = c;
  const list = $("customer-details");
  list.replaceChildren();
  $("enrolment").hidden = true;
  $("customer").hidden = false;
  if (!c) {
    $("customer-title").textContent = "No customer " + state.customerId;
    detail(list, "Status", "not found: fill in contacts and save to create it");
    $("edit-email").value = "";
    $("edit-phone").value = "";
    for (const id of ["unlock", "enrol", "revoke", "delete"]) $(id).hidden = true;
    return;
  }
  for (const id of ["unlock", "enrol", "revoke", "delete"]) $(id).hidden = false;
  $("customer-title").textContent = "Customer " + c.id;
  detail(list, "Email", c.email || "none");
  detail(list, "Phone", c.phone || "none");
  detail(list, "Authenticator", c.totp_enrolled ? "enrolled" : "not enrolled");
  if ("locked" in c) {
    let lock = c.locked ? "locked" : "not locked";
    if (c.locked && c.needs_desk) lock += " until unlocked here (too many wrong codes in a row)";
    else if (c.locked && c.locked_seconds_left != null) lock += " (" + c.locked_seconds_left + " s left)";
    detail(list, "Lock", lock);
  }
  if ("failures" in c) detail(list, "Wrong codes in window", String(c.failures));
  if ("failures_in_a_row" in c) detail(list, "Wrong codes in a row", String(c.failures_in_a_row));
  if ("pending" in c) {
    detail(list, "Pending code", c.pending ? c.pending.method + ", expires in " + c.pending.expires_in_seconds + " s" : "none");
  }
  $("edit-email").value = c.email || "";
  $("edit-phone").value = c.phone || "";
  $("revoke").hidden = !c.totp_enrolled;
}

async function lookup(ev) {
  if (ev) ev.preventDefault();
  const id = $("customer-id").value.trim();
  if (!id) return;
  state.customerId = id;
  say($("customer-status"), "Looking up " + id + "…");
  const res = await api("GET", customerPath());
  if (res.ok) {
    renderCustomer(res.data);
    say($("customer-status"), "Customer " + id + " found.", "good");
  } else if (res.status === 404) {
    renderCustomer(null);
    say($("customer-status"), "No customer " + id + ".", "bad");
  } else {
    $("customer").hidden = true;
    say($("customer-status"), problem(res), "bad");
  }
}

async function saveContacts(ev) {
  ev.preventDefault();
  const email = $("edit-email").value.trim();
  const phone = $("edit-phone").value.trim();
  const res = await api("PUT", customerPath(), { email: email || null, phone: phone || null });
  if (res.ok) {
    renderCustomer(res.data);
    say($("customer-status"), res.status === 201 ? "Customer created." : "Contacts saved.", "good");
  } else {
    say($("customer-status"), problem(res), "bad");
  }
}

async function customerAction(method, suffix, done, confirmText) {
  if (confirmText && !window.confirm(confirmText)) return;
  const res = await api(method, customerPath(suffix));
  if (res.ok) {
    say($("customer-status"), done, "good");
    if (suffix !== "") await refreshCustomer();
    else {
      $("customer").hidden = true;
      state.customer = null;
    }
  } else {
    say($("customer-status"), problem(res), "bad");
  }
}

async function refreshCustomer() {
  const res = await api("GET", customerPath());
  if (res.ok) renderCustomer(res.data);
}

async function enrol() {
  if (state.customer && state.customer.totp_enrolled &&
      !window.confirm("Replace the customer's current authenticator? Codes from the old one stop working.")) return;
  const res = await api("POST", customerPath("/totp"));
  if (!res.ok) {
    say($("customer-status"), problem(res), "bad");
    return;
  }
  await refreshCustomer();
  $("qr").src = "data:image/png;base64," + res.data.qr_png_base64;
  $("secret").textContent = res.data.secret;
  $("otpauth").textContent = res.data.otpauth_uri;
  $("enrolment").hidden = false;
  say($("customer-status"), "Authenticator enrolled: scan the code now, it is shown this once.", "good");
}

// ---- Settings ---------------------------------------------------------------------------------

const SECTIONS = ["email", "sms", "codes", "lockout", "statuses", "totp"];
const LONG_TEXT = /(body|message|template)$/;

function fieldId(key) {
  return "setting-" + key.replace(/[^A-Za-z0-9_-]/g, "-");
}

// One input for one setting; `kind` says how to read it back.
function settingField(key, value, secret) {
  const id = fieldId(key);
  const label = el("label", { for: id, text: key.split(".").pop().replace(/_/g, " ") });
  const error = el("p", { class: "field-error", id: id + "-error", role: "alert" });
  let input;
  let kind;
  if (secret) {
    kind = "secret";
    input = el("input", { id, type: "password", autocomplete: "new-password",
      placeholder: value === "set" ? "set (leave empty to keep)" : "unset" });
  } else if (typeof value === "boolean") {
    kind = "bool";
    input = el("input", { id, type: "checkbox" });
    input.checked = value;
  } else if (typeof value === "number") {
    kind = "number";
    input = el("input", { id, type: "number", step: "any" });
    input.value = String(value);
  } else if (Array.isArray(value)) {
    kind = "list";
    input = el("textarea", { id, rows: String(Math.max(2, value.length + 1)) });
    input.value = value.join("\n");
  } else {
    kind = value === null ? "nullable" : "text";
    const text = value === null ? "" : String(value);
    if (LONG_TEXT.test(key) || text.length > 60 || text.includes("\n")) {
      input = el("textarea", { id, rows: "3" });
    } else {
      input = el("input", { id, type: "text", spellcheck: "false" });
    }
    input.value = text;
  }
  input.setAttribute("aria-describedby", id + "-error" + (kind === "list" ? " " + id + "-hint" : ""));
  const wrap = el("div", { class: kind === "bool" ? "field check" : "field", dataset: { key } }, label, input);
  if (kind === "bool") wrap.insertBefore(input, label);
  if (kind === "list") wrap.append(el("p", { class: "hint", id: id + "-hint", text: "One entry a line." }));
  wrap.append(error);
  state.fields.push({ key, kind, input, original: value, error });
  input.addEventListener("input", () => input.classList.toggle("changed", changed(state.fields.find((f) => f.input === input))));
  input.addEventListener("change", () => input.classList.toggle("changed", changed(state.fields.find((f) => f.input === input))));
  return wrap;
}

function addSettings(container, prefix, obj, secrets) {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix + "." + k;
    if (v && typeof v === "object" && !Array.isArray(v)) {
      const group = el("fieldset", {}, el("legend", { text: key }));
      addSettings(group, key, v, secrets);
      container.append(group);
    } else {
      container.append(settingField(key, v, false));
    }
  }
}

// A secret key whose value the document leaves out, under an object the document has.
function wholeSecret(doc, key) {
  const parts = key.split(".");
  let at = doc;
  for (const p of parts.slice(0, -1)) {
    if (!at || typeof at !== "object" || Array.isArray(at)) return false;
    at = at[p];
  }
  return !!at && typeof at === "object" && !Array.isArray(at) && !(parts[parts.length - 1] in at);
}

function renderSettings(doc) {
  state.settings = doc;
  state.fields = [];
  const box = $("settings-fields");
  box.replaceChildren();
  const secrets = doc.secrets || {};
  for (const section of SECTIONS) {
    if (!doc[section] || typeof doc[section] !== "object") continue;
    const group = el("fieldset", {}, el("legend", { text: section }));
    addSettings(group, section, doc[section], secrets);
    // Whole-value secrets (absent from the document) get a write-only field; a secret inside a
    // value (a URL's password, a header's value) shows as "(secret)" in that value's own field,
    // and sending the placeholder back keeps it.
    const mine = Object.keys(secrets).filter((k) => k.startsWith(section + ".") && wholeSecret(doc, k));
    for (const k of mine) group.append(settingField(k, secrets[k], true));
    box.append(group);
  }
  $("settings-form").hidden = false;
}

async function loadSettings(message) {
  say($("settings-status"), "Loading settings…");
  const res = await api("GET", "/admin/v1/settings");
  if (!res.ok) {
    $("settings-form").hidden = true;
    say($("settings-status"), "Cannot load the settings: " + problem(res), "bad");
    return;
  }
  state.etag = res.headers.get("ETag") || "";
  renderSettings(res.data || {});
  say($("settings-status"), message || "Settings loaded.", message ? "good" : "");
}

function readField(f) {
  const v = f.input.value;
  switch (f.kind) {
    case "bool": return f.input.checked;
    case "number": return v.trim() === "" ? NaN : Number(v);
    case "list": return v.split("\n").map((s) => s.trim()).filter((s) => s !== "");
    case "nullable": return v === "" ? null : v;
    case "secret": return v;
    default: return v;
  }
}

function changed(f) {
  if (!f) return false;
  if (f.kind === "secret") return f.input.value !== "";
  return JSON.stringify(readField(f)) !== JSON.stringify(f.original);
}

// The merge patch of the fields that changed, nested as the settings are.
function patchOf(fields) {
  const patch = {};
  for (const f of fields) {
    if (!changed(f)) continue;
    const parts = f.key.split(".");
    let at = patch;
    for (const p of parts.slice(0, -1)) at = at[p] = at[p] || {};
    at[parts[parts.length - 1]] = readField(f);
  }
  return patch;
}

async function saveSettings(ev) {
  ev.preventDefault();
  for (const f of state.fields) f.error.textContent = "";
  const bad = state.fields.find((f) => f.kind === "number" && changed(f) && Number.isNaN(readField(f)));
  if (bad) {
    bad.error.textContent = "a number is needed here";
    bad.input.focus();
    return;
  }
  const patch = patchOf(state.fields);
  if (Object.keys(patch).length === 0) {
    say($("settings-status"), "Nothing changed.");
    return;
  }
  say($("settings-status"), "Saving…");
  const res = await api("PATCH", "/admin/v1/settings", patch,
    { "Content-Type": "application/merge-patch+json", "If-Match": state.etag });
  if (res.ok) {
    await loadSettings("Saved.");
  } else if (res.status === 412) {
    say($("settings-status"), "The settings changed meanwhile: reload them, then make your change again.", "bad");
  } else {
    const key = res.data && res.data.key;
    const f = key && state.fields.find((x) => x.key === key);
    if (f) {
      f.error.textContent = problem(res);
      f.input.focus();
      say($("settings-status"), "Not saved: see " + key + ".", "bad");
    } else {
      say($("settings-status"), "Not saved: " + problem(res), "bad");
    }
  }
}

// ---- History ----------------------------------------------------------------------------------

async function loadHistory() {
  say($("history-status"), "Loading history…");
  const res = await api("GET", "/admin/v1/settings/history");
  const rows = $("history-rows");
  rows.replaceChildren();
  if (!res.ok) {
    $("history-table").hidden = true;
    say($("history-status"), "Cannot load the history: " + problem(res), "bad");
    return;
  }
  const changes = (res.data && res.data.changes) || [];
  for (const c of changes) {
    for (const d of c.changes || []) {
      rows.append(el("tr", {},
        el("td", {}, el("time", { datetime: c.at, text: c.at })),
        el("td", { text: c.by }),
        el("td", {}, el("code", { text: d.key })),
        el("td", { text: d.old == null ? "" : String(d.old) }),
        el("td", { text: d.new == null ? "" : String(d.new) })));
    }
  }
  $("history-table").hidden = changes.length === 0;
  const n = changes.length;
  say($("history-status"), n === 0 ? "No changes yet." : n === 1 ? "1 change." : n + " changes.");
}

// ---- Test sends -------------------------------------------------------------------------------

async function testSend(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const status = form.querySelector(".status");
  const to = form.querySelector("input").value.trim();
  say(status, "Sending…");
  const res = await api("POST", form.dataset.path, { to });
  if (res.ok && res.data) {
    const d = res.data;
    say(status, (d.sent ? "Sent" : "Not sent") + " in " + d.elapsed_ms + " ms. The server said: " + d.answer,
      d.sent ? "good" : "bad");
  } else {
    say(status, problem(res), "bad");
  }
}

// ---- Wiring -----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => show(t.dataset.screen));
  $("lookup-form").addEventListener("submit", lookup);
  $("edit-form").addEventListener("submit", saveContacts);
  $("unlock").addEventListener("click", () => customerAction("DELETE", "/lock", "Customer unlocked."));
  $("enrol").addEventListener("click", enrol);
  $("revoke").addEventListener("click", () => customerAction("DELETE", "/totp", "Authenticator revoked.",
    "Revoke the customer's authenticator? Its codes stop working at once."));
  $("delete").addEventListener("click", () => customerAction("DELETE", "", "Customer deleted.",
    "Delete customer " + state.customerId + "? This cannot be undone."));
  $("settings-load").addEventListener("click", () => loadSettings());
  $("settings-form").addEventListener("submit", saveSettings);
  $("history-load").addEventListener("click", loadHistory);
  for (const f of document.querySelectorAll(".test-send")) f.addEventListener("submit", testSend);
  // A reloaded page picks its session up again.
  const res = await api("GET", "/admin/session");
  if (res.ok && res.data) enter(res.data);
  else showLogin();
});
