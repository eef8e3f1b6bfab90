// The chat playground. It calls the gateway's public OpenAI-compatible API with the API key typed in (kept in
// this tab's sessionStorage), streams the answer, shows the retrieved sources, and posts thumbs ratings to
// /v1/feedback on the answer's x-request-id. All text goes in with textContent: nothing from a model or a
// document is ever parsed as HTML.
"use strict";

const KEY_STORE = "llmops.playground.key";
const $ = (id) => document.getElementById(id);
const keyInput = $("pg-key");
const messagesEl = $("messages");
const statusEl = $("pg-status");
let history = [];
let answerCount = 0;

// The tab's stored key fills an empty field only: on a slow load this script can run after someone (or a test)
// already typed a key, which must not be wiped.
if (!keyInput.value) keyInput.value = sessionStorage.getItem(KEY_STORE) || "";
keyInput.addEventListener("change", () => sessionStorage.setItem(KEY_STORE, keyInput.value.trim()));
$("pg-new").addEventListener("click", () => { history = []; messagesEl.replaceChildren(); statusEl.textContent = ""; });
$("pg-message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); $("chat-form").requestSubmit(); }
});
$("chat-form").addEventListener("submit", (event) => { event.preventDefault(); send(); });

function authHeaders() {
  return { "authorization": "Bearer " + keyInput.value.trim(), "content-type": "application/json" };
}

function addUserMessage(text) {
  const li = document.createElement("li");
  li.className = "message user";
  const who = document.createElement("p");
  who.className = "who";
  who.textContent = "You";
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  li.append(who, body);
  messagesEl.append(li);
}

function newAnswer() {
  const node = $("answer-template").content.firstElementChild.cloneNode(true);
  answerCount += 1;
  const correction = node.querySelector("[data-correction]");
  correction.id = "correction-" + answerCount;
  node.querySelector("[data-for=correction]").setAttribute("for", correction.id);
  messagesEl.append(node);
  return node;
}

function errorMessage(body, status) {
  if (body && body.error && body.error.message) return body.error.message + " (" + status + ")";
  return "the gateway answered " + status;
}

async function send() {
  const text = $("pg-message").value.trim();
  if (!text) return;
  if (!keyInput.value.trim()) { statusEl.textContent = "Enter an API key first."; keyInput.focus(); return; }
  sessionStorage.setItem(KEY_STORE, keyInput.value.trim());
  const body = {
    model: $("pg-route").value,
    messages: [...history, { role: "user", content: text }],
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: Number($("pg-max-tokens").value) || 128,
  };
  if ($("pg-rag").checked) body.rag = { collection: $("pg-collection").value, top_k: Number($("pg-topk").value) || 4 };
  addUserMessage(text);
  $("pg-message").value = "";
  const answer = newAnswer();
  const textEl = answer.querySelector("[data-text]");
  $("pg-send").disabled = true;
  messagesEl.setAttribute("aria-busy", "true"); // screen readers read the answer once it is whole, not per token
  statusEl.textContent = "Answering…";
  let full = "";
  try {
    const response = await fetch("/v1/chat/completions", { method: "POST", headers: authHeaders(), body: JSON.stringify(body) });
    const requestId = response.headers.get("x-request-id");
    answer.querySelector("[data-variant]").textContent = "· variant " + (response.headers.get("x-llmops-variant") || "?");
    if (!response.ok) {
      const err = await response.json().catch(() => null);
      throw new Error(errorMessage(err, response.status));
    }
    for await (const event of sseEvents(response)) {
      if (event.error) throw new Error(event.error.message || "the stream ended with an error");
      if (event.sources) showSources(answer, event.sources);
      const delta = event.choices && event.choices[0] && event.choices[0].delta;
      if (delta && delta.content) { full += delta.content; textEl.textContent = full; }
    }
    history = [...body.messages, { role: "assistant", content: full }];
    answer.dataset.requestId = requestId;
    enableRating(answer, requestId);
    statusEl.textContent = "Done. Rate the answer below it.";
  } catch (error) {
    textEl.textContent = full;
    const p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    p.textContent = "Error: " + error.message;
    answer.append(p);
    statusEl.textContent = "";
  } finally {
    messagesEl.setAttribute("aria-busy", "false");
    $("pg-send").disabled = false;
  }
}

async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

function showSources(answer, sources) {
  const box = answer.querySelector("[data-sources]");
  const list = answer.querySelector("[data-source-list]");
  list.replaceChildren();
  for (const source of sources) {
    const li = document.createElement("li");
    const head = document.createElement("p");
    head.className = "meta";
    head.textContent = "[" + source.index + "] " + source.document_id + " · chunk " + source.chunk_index +
      " · score " + Number(source.score).toFixed(3);
    const snippet = document.createElement("blockquote");
    snippet.textContent = source.snippet;
    li.append(head, snippet);
    list.append(li);
  }
  box.hidden = false;
  box.open = true;
}

function enableRating(answer, requestId) {
  const form = answer.querySelector("[data-rating]");
  const status = answer.querySelector("[data-rating-status]");
  form.hidden = false;
  for (const button of form.querySelectorAll("[data-rate]")) {
    button.addEventListener("click", () => rate(form, status, requestId, button.dataset.rate));
  }
}

async function rate(form, status, requestId, rating) {
  const correction = form.querySelector("[data-correction]").value.trim();
  const body = { request_id: requestId, rating };
  if (correction) body.correction = correction;
  status.textContent = "Sending…";
  try {
    const response = await fetch("/v1/feedback", { method: "POST", headers: authHeaders(), body: JSON.stringify(body) });
    const answer = await response.json().catch(() => null);
    if (response.status === 201) status.textContent = "Thanks: rated " + rating + (correction ? " with a correction." : ".");
    else if (response.status === 202) status.textContent = "Thanks: rated " + rating + " (accepted, " + ((answer && answer.status) || "pending") + ").";
    else throw new Error(errorMessage(answer, response.status));
    for (const b of form.querySelectorAll("[data-rate]")) b.setAttribute("aria-pressed", String(b.dataset.rate === rating));
  } catch (error) {
    status.textContent = "The rating was not saved: " + error.message;
  }
}
