// The web form's behaviour: submit through /api/submissions and list the user's jobs from /api/jobs.
// Every text that comes from the server (names, errors, logs) is written with textContent, never
// as HTML. The token lives in sessionStorage (this tab only) and goes out only as a header.
"use strict";

(function () {
  const T = JSON.parse(document.getElementById("texts").textContent);
  const TOKEN_KEY = "leadersboard.token";
  const ACTIVE = new Set(["pending", "running"]);
  const $ = (id) => document.getElementById(id);
  const form = $("submission");
  const tokenField = $("token");
  const result = $("result");
  const note = $("jobs-note");
  const rows = $("jobs").querySelector("tbody");
  const logs = $("logs");
  let shownJob = null;
  let shownJobActive = false;

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function rememberToken() {
    const value = tokenField.value.trim();
    if (value) {
      sessionStorage.setItem(TOKEN_KEY, value);
    } else {
      sessionStorage.removeItem(TOKEN_KEY);
    }
    return value;
  }

  function api(path, options) {
    const init = Object.assign({ cache: "no-store", credentials: "omit" }, options || {});
    init.headers = Object.assign({ Authorization: "Bearer " + token() }, init.headers || {});
    return fetch("api/" + path, init);
  }

  function say(kind, lines) {
    result.className = kind;
    result.replaceChildren(...lines.map((line) => {
      const p = document.createElement("p");
      p.textContent = line;
      return p;
    }));
  }

  async function submit(event) {
    event.preventDefault();
    if (!rememberToken()) {
      say("error", [T.need_token]);
      return;
    }
    const button = $("submit");
    button.disabled = true;
    say("info", [T.sending]);
    try {
      const answer = await api("submissions", { method: "POST", body: new FormData(form) });
      const body = await answer.json().catch(() => ({}));
      if (answer.status === 201) {
        const lines = [fill(T.accepted, { folder: body.folder, branch: body.branch, submission: body.submission_id })];
        if (body.job_id) {
          lines.push(fill(T.accepted_job, { job: body.job_id }));
        }
        if (body.note) {
          lines.push(body.note);
        }
        say("ok", lines);
        $("files").value = "";
      } else {
        const lines = [fill(T.error, { status: answer.status })];
        lines.push(...String(body.detail || answer.statusText).split("\n"));
        const retry = answer.headers.get("Retry-After");
        if (answer.status === 429 && retry) {
          lines.push(fill(T.retry_after, { seconds: retry }));
        }
        say("error", lines);
      }
    } catch (error) {
      say("error", [T.network_error]);
    } finally {
      button.disabled = false;
      refresh();
    }
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) {
      td.className = className;
    }
    return td;
  }

  function metrics(job) {
    const shown = [];
    for (const [name, label] of [["auroc", "AUROC"], ["f1_score", "F1"]]) {
      if (typeof job.metrics[name] === "number") {
        shown.push(label + " " + job.metrics[name].toFixed(3));
      }
    }
    return shown.join(" · ");
  }

  function row(job) {
    const tr = document.createElement("tr");
    tr.dataset.jobId = job.job_id;
    tr.dataset.status = job.status;
    const status = cell(T["status_" + job.status] || job.status, "status " + job.status);
    if (job.queue_position) {
      const place = document.createElement("div");
      place.className = "place";
      place.textContent = fill(T.queue_position, { n: job.queue_position, cls: job.resource_class || "" });
      status.append(place);
    }
    if (job.error) {
      const why = document.createElement("div");
      why.className = "why";
      why.textContent = job.error;
      status.append(why);
    }
    const id = cell(job.job_id.slice(0, 8), "mono");
    id.title = job.job_id;
    const actions = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "show-logs";
    button.textContent = T.show_logs;
    button.addEventListener("click", () => showLogs(job.job_id, ACTIVE.has(job.status)));
    actions.append(button);
    tr.append(status, cell(job.submission), cell(job.benchmark), cell(metrics(job)),
              cell((job.created_at || "").replace("T", " ").replace("Z", " UTC")), id, actions);
    return tr;
  }

  async function refresh() {
    if (!token()) {
      note.textContent = T.jobs_need_token;
      rows.replaceChildren();
      return;
    }
    try {
      const answer = await api("jobs");
      if (answer.status === 401) {
        note.textContent = T.bad_token;
        rows.replaceChildren();
        return;
      }
      if (!answer.ok) {
        return;  // a passing fault: the next round tries again
      }
      const jobs = await answer.json();
      note.textContent = jobs.length ? T.jobs_hint : T.no_jobs;
      rows.replaceChildren(...jobs.map(row));
      const shown = jobs.find((job) => job.job_id === shownJob);
      if (shown && (shownJobActive || ACTIVE.has(shown.status))) {
        showLogs(shown.job_id, ACTIVE.has(shown.status));  // follow a running job's output
      }
    } catch (error) {
      // offline for a moment: keep what is shown
    }
  }

  async function showLogs(jobId, active) {
    shownJob = jobId;
    shownJobActive = active;
    $("logs-title").textContent = fill(T.logs_of, { job: jobId });
    logs.hidden = false;
    try {
      const answer = await api("jobs/" + encodeURIComponent(jobId) + "/logs");
      const text = await answer.text();
      $("logs-text").textContent = answer.ok ? (text || T.logs_empty) : text;
    } catch (error) {
      $("logs-text").textContent = T.network_error;
    }
  }

  tokenField.value = token();
  tokenField.addEventListener("change", () => {
    rememberToken();
    refresh();
  });
  $("forget").addEventListener("click", () => {
    tokenField.value = "";
    rememberToken();
    logs.hidden = true;
    shownJob = null;
    refresh();
  });
  $("close-logs").addEventListener("click", () => {
    logs.hidden = true;
    shownJob = null;
  });
  form.addEventListener("submit", submit);
  refresh();
  setInterval(refresh, T.refresh_seconds * 1000);
})();
