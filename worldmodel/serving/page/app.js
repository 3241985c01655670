// The page's behaviour: send a request, show its queue place and progress, play the video, list the settings.
"use strict";

const EXAMPLES = [
  "a red ball is dropped and bounces twice",
  "a blue ball is thrown to the right and falls in a parabola",
  "a green ball glides left without gravity",
  "two balls collide head-on and fly apart",
];

const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function requestId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function watch(id, stop) {
  while (!stop.done) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    if (stop.done) return;
    const answer = await fetch(`/api/progress/${id}`).catch(() => null);
    if (!answer || !answer.ok || stop.done) continue;
    const state = await answer.json();
    if (state.state === "queued") setStatus(`waiting in the queue: place ${state.position}`);
    else setStatus(`decoding (batch of ${state.batch_size}): ${Math.round(100 * state.progress)} %`);
  }
}

function showResult(answer) {
  const player = $("player");
  player.src = answer.video;
  $("result").hidden = false;
  const rows = [["seed", answer.seed], ...Object.entries(answer.settings),
                ["batch", `${answer.batch.size} request(s), ${answer.batch.decode_seconds} s`]];
  const table = $("settings");
  table.replaceChildren();
  for (const [key, value] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = key;
    tr.insertCell().textContent = value === null ? (key === "quantize" ? "none (float32)" : "default") : String(value);
  }
  const tr = table.insertRow();
  tr.insertCell().textContent = "command";
  const code = document.createElement("code");
  code.textContent = answer.cli;
  tr.insertCell().appendChild(code);
  player.play().catch(() => {});
}

async function submit(url, init, buttons) {
  const id = requestId();
  init.headers = { ...(init.headers || {}), "X-Request-Id": id };
  const stop = { done: false };
  buttons.forEach((b) => { b.disabled = true; });
  setStatus("sending…");
  watch(id, stop);
  try {
    const response = await fetch(url, { method: "POST", ...init });
    const answer = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
    stop.done = true;
    if (!response.ok) {
      setStatus(answer.error || `the server answered ${response.status}`, true);
      return;
    }
    setStatus("done");
    showResult(answer);
  } catch (err) {
    stop.done = true;
    setStatus(`the request failed: ${err}`, true);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

function number(id) {
  const value = $(id).value.trim();
  return value === "" ? undefined : Number(value);
}

$("t2v").addEventListener("submit", (event) => {
  event.preventDefault();
  const body = { prompt: $("prompt").value };
  for (const key of ["seed", "num_frames", "guidance_scale", "temperature", "top_k"]) {
    if (number(key) !== undefined) body[key] = number(key);
  }
  submit("/api/text-to-video", { headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) },
         [$("generate"), $("continue")]);
});

$("rollout").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData();
  form.append("video", $("video").files[0]);
  form.append("context_frames", $("context_frames").value);
  if ($("rollout_frames").value) form.append("num_frames", $("rollout_frames").value);
  form.append("seed", $("rollout_seed").value || "0");
  submit("/api/rollout", { body: form }, [$("generate"), $("continue")]);
});

for (const text of EXAMPLES) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = text;
  button.addEventListener("click", () => { $("prompt").value = text; });
  $("examples").appendChild(button);
}

fetch("/api/health").then((r) => r.json()).then((info) => {
  const [h, w] = info.frame_size;
  $("model").textContent = `model ${info.checkpoint}${info.quantize ? ` (${info.quantize})` : ""}: ` +
    `${h}x${w} frames, ${info.default_frames} frames by default (1 + ${info.frame_step}k, at most ` +
    `${info.max_frames}), prompts up to ${info.max_prompt_bytes} bytes`;
  $("num_frames").placeholder = info.default_frames;
  $("rollout_frames").placeholder = info.default_frames;
}).catch(() => setStatus("the server does not answer", true));
