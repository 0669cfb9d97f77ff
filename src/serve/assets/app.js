// The lb-dfaas dashboard: configuration editor, start/stop, live status
// and log over the WebSocket, results table and plots. No dependencies:
// it works offline, from the binary alone.
'use strict';

const API = '/api/k6';
const TOKEN_KEY = 'lb-dfaas-token';
const MAX_LOG_LINES = 1000;
const COLORS = ['#2458c6', '#d97706', '#059669', '#7c3aed', '#db2777', '#0891b2', '#65a30d', '#9333ea'];

let token = sessionStorage.getItem(TOKEN_KEY) || '';
let status = null;
let statusAt = 0;
let logSeq = 0;
let socket = null;
let retryMs = 1000;
let resultsKey = '';
let resultsTimer = null;
let scripts = [];
let enabledScripts = [];

const $ = (id) => document.getElementById(id);

function notice(text) { $('notice').textContent = text || ''; }

// ------------------------------------------------------------ API calls

class ApiError extends Error {
  constructor(status, error) {
    super((error && error.message) || ('HTTP ' + status));
    this.status = status;
    this.error = error || {};
  }
}

async function call(method, path, body) {
  const headers = {};
  if (token) headers['Authorization'] = 'Bearer ' + token;
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(API + path, init);
  if (res.status === 401) askToken();
  const isJson = (res.headers.get('content-type') || '').includes('json');
  const data = isJson ? await res.json() : await res.text();
  if (!res.ok) throw new ApiError(res.status, isJson ? data.error : { message: String(data) });
  return data;
}

function askToken() {
  $('token-form').hidden = false;
  notice('this server wants a token');
}

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  token = $('token').value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token-form').hidden = true;
  notice('');
  start();
});

// ------------------------------------------------------------ configuration

function selectedKind() {
  return document.querySelector('input[name=kind]:checked').value;
}

function showKind(kind) {
  document.querySelector(`input[name=kind][value=${kind}]`).checked = true;
  $('campaign-editor').hidden = kind !== 'campaign';
  $('suite-editor').hidden = kind !== 'suite';
}

document.querySelectorAll('input[name=kind]').forEach((radio) =>
  radio.addEventListener('change', () => showKind(selectedKind())));

function fillConfig(doc) {
  showKind(doc.kind);
  $('campaign-json').value = JSON.stringify(doc.campaign, null, 2);
  const suite = doc.suite || {};
  for (const field of ['globalUserCount', 'testDuration', 'rampUpDuration', 'maxDuration', 'intervalBetweenTests']) {
    $(field).value = suite[field] === undefined ? '' : suite[field];
  }
  $('suite-k6').value = JSON.stringify(suite.k6 || {}, null, 2);
  enabledScripts = suite.enabledScripts || [];
  renderScripts();
  showWarnings(doc.warnings || []);
}

function renderScripts() {
  const list = $('script-list');
  const names = [...new Set([...enabledScripts, ...scripts])];
  if (names.length === 0) {
    list.innerHTML = '<em>none in the scripts directory</em>';
    return;
  }
  list.textContent = '';
  for (const name of names) {
    const label = document.createElement('label');
    label.className = 'script';
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.value = name;
    box.checked = enabledScripts.includes(name);
    box.addEventListener('change', () => {
      enabledScripts = names.filter((n) =>
        list.querySelector(`input[value="${CSS.escape(n)}"]`).checked);
    });
    label.append(box, ' ' + name + (scripts.includes(name) ? '' : ' (missing)'));
    list.append(label, document.createElement('br'));
  }
}

function parseJsonField(id, field, errors) {
  try {
    return JSON.parse($(id).value || '{}');
  } catch (e) {
    errors.push({ field, reason: 'not JSON: ' + e.message });
    return null;
  }
}

function configBody(errors) {
  const kind = selectedKind();
  if (kind === 'campaign') {
    return { kind, campaign: parseJsonField('campaign-json', 'campaign', errors) };
  }
  const users = $('globalUserCount').value.trim();
  const suite = {
    globalUserCount: /^\d+$/.test(users) ? Number(users) : users,
    testDuration: $('testDuration').value.trim(),
    rampUpDuration: $('rampUpDuration').value.trim(),
    maxDuration: $('maxDuration').value.trim(),
    intervalBetweenTests: $('intervalBetweenTests').value.trim(),
    enabledScripts,
    k6: parseJsonField('suite-k6', 'suite.k6', errors),
  };
  return { kind, suite };
}

function clearErrors() {
  $('config-errors').textContent = '';
  document.querySelectorAll('.invalid').forEach((el) => {
    el.classList.remove('invalid');
    el.removeAttribute('title');
  });
}

// The editor element a field error belongs to: the longest data-field
// that is the error's field or a prefix of it.
function elementFor(field) {
  let best = null;
  for (const el of document.querySelectorAll('[data-field]')) {
    const name = el.dataset.field;
    if ((field === name || field.startsWith(name + '.') || field.startsWith(name + '['))
        && (!best || name.length > best.dataset.field.length)) {
      best = el;
    }
  }
  return best;
}

function showErrors(fields, message) {
  clearErrors();
  const list = $('config-errors');
  if (!fields || fields.length === 0) {
    const li = document.createElement('li');
    li.textContent = message;
    list.append(li);
    return;
  }
  for (const { field, reason } of fields) {
    const li = document.createElement('li');
    li.dataset.errorField = field;
    li.textContent = (field ? field + ': ' : '') + reason;
    list.append(li);
    const el = elementFor(field);
    if (el) {
      el.classList.add('invalid');
      el.title = (el.title ? el.title + '\n' : '') + reason;
    }
  }
}

function showWarnings(warnings) {
  const list = $('config-warnings');
  list.textContent = '';
  for (const w of warnings) {
    const li = document.createElement('li');
    li.textContent = w;
    list.append(li);
  }
}

async function loadConfig() {
  fillConfig(await call('GET', '/config'));
}

$('save').addEventListener('click', async () => {
  const errors = [];
  const body = configBody(errors);
  if (errors.length) return showErrors(errors);
  try {
    fillConfig(await call('PUT', '/config', body));
    clearErrors();
    notice('configuration saved');
  } catch (e) {
    showErrors(e.error.fields, e.message);
  }
});

$('reset').addEventListener('click', async () => {
  try {
    fillConfig(await call('POST', '/config/reset'));
    clearErrors();
    notice('configuration reset to the defaults');
  } catch (e) {
    showErrors(e.error.fields, e.message);
  }
});

// ------------------------------------------------------------ start / stop

$('start').addEventListener('click', async () => {
  try {
    const answer = await call('POST', '/start');
    clearErrors();
    notice('job ' + answer.jobId + ' started');
    renderStatus(answer.status);
  } catch (e) {
    if (e.error.fields && e.error.fields.length) showErrors(e.error.fields, e.message);
    notice(e.message);
  }
});

$('stop').addEventListener('click', async () => {
  try {
    renderStatus((await call('POST', '/stop')).status);
    notice('stop requested');
  } catch (e) {
    notice(e.message);
  }
});

// ------------------------------------------------------------ status

function fmtSeconds(s) {
  if (s === null || s === undefined || !isFinite(s)) return '–';
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return (h ? h + ' h ' : '') + (h || m ? m + ' min ' : '') + sec + ' s';
}

function fmtList(count, names) {
  if (!count) return '0';
  const shown = names.slice(-5).join(', ');
  return count + (shown ? ' — ' + shown + (names.length > 5 ? ', …' : '') : '');
}

function renderStatus(s) {
  status = s;
  statusAt = Date.now();
  const state = $('state');
  state.textContent = s.state;
  state.className = 'badge ' + s.state;
  $('kind').textContent = s.kind ? '(' + s.kind + ')' : '';
  $('job-id').textContent = s.jobId || (s.lastJobId ? s.lastJobId + ' (before this server started)' : '–');
  $('start-time').textContent = s.startTime ? new Date(s.startTime).toLocaleString() : '–';
  const p = s.progress;
  $('progress-done').textContent = p.done;
  $('progress-total').textContent = p.total;
  $('progress-bar').max = Math.max(p.total, 1);
  $('progress-bar').value = p.done;
  let current = '–';
  if (s.currentConfig) {
    const c = s.currentConfig;
    const rates = Object.entries(c.rates).map(([f, r]) => f + '=' + r + ' req/s').join(', ');
    current = 'config ' + c.id + ': ' + rates + (c.iteration ? ' (iteration ' + c.iteration + '/' + c.iterations + ')' : '');
  } else if (s.currentScript) {
    current = 'script ' + s.currentScript + (s.currentUserCount ? ' (' + s.currentUserCount + ' VUs)' : '');
  }
  $('current').textContent = current;
  const suite = s.kind === 'suite';
  $('completed').textContent = fmtList(p.completed, suite ? s.completedScripts : s.completedConfigs)
    + (p.skipped ? ' (' + p.skipped + ' skipped)' : '');
  $('failed').textContent = fmtList(p.failed, suite ? s.failedScripts : s.failedConfigs);
  $('last-error').textContent = s.lastError || '–';
  $('last-error').className = s.lastError ? 'error-text' : '';
  $('start').disabled = s.isRunning;
  $('stop').disabled = !s.isRunning || s.state === 'stopping';
  tick();
  const key = [s.jobId || s.lastJobId, s.state, s.resultRows, p.done].join('|');
  if (key !== resultsKey) {
    resultsKey = key;
    clearTimeout(resultsTimer);
    resultsTimer = setTimeout(refreshResults, 400);
  }
}

// Elapsed and time left move on between status messages.
function tick() {
  if (!status) return;
  const since = (Date.now() - statusAt) / 1000;
  const p = status.progress;
  const running = status.state === 'running' || status.state === 'stopping';
  $('elapsed').textContent = fmtSeconds(p.elapsedSeconds === null ? null : p.elapsedSeconds + (running ? since : 0));
  $('eta').textContent = p.etaSeconds === null ? '–' : '≈ ' + fmtSeconds(p.etaSeconds - since);
}
setInterval(tick, 1000);

// ------------------------------------------------------------ log

function appendLog(entry) {
  if (entry.seq <= logSeq) return;
  logSeq = entry.seq;
  const log = $('log');
  const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  const li = document.createElement('li');
  li.className = entry.event === 'k6' ? 'k6' : entry.level;
  const time = new Date(entry.time * 1000).toLocaleTimeString();
  li.textContent = time + ' ' + (entry.event === 'k6' ? 'k6: ' : '') + entry.message;
  li.dataset.event = entry.event;
  log.append(li);
  while (log.children.length > MAX_LOG_LINES) log.firstChild.remove();
  if (stick) log.scrollTop = log.scrollHeight;
}

async function catchUpLog() {
  for (let page = 0; page < 10; page++) {
    const answer = await call('GET', '/logs?since=' + logSeq + '&limit=1000');
    if (answer.reset) {
      // The server restarted: its entries are numbered from 1 again.
      logSeq = 0;
      $('log').textContent = '';
    }
    answer.entries.forEach(appendLog);
    if (answer.entries.length < 1000) return;
  }
}

// ------------------------------------------------------------ WebSocket

function connect() {
  if (socket) socket.close();
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const protocols = ['lb-dfaas'];
  if (token) protocols.push('lb-dfaas.bearer.' + token);
  const ws = new WebSocket(scheme + location.host + API + '/ws', protocols);
  socket = ws;
  ws.onopen = () => {
    retryMs = 1000;
    const badge = $('connection');
    badge.textContent = 'live';
    badge.className = 'badge on';
    catchUpLog().catch((e) => notice(e.message));
  };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'status') renderStatus(message.status);
    else if (message.type === 'log') appendLog(message.entry);
    else if (message.type === 'lagged') catchUpLog().catch((e) => notice(e.message));
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    const badge = $('connection');
    badge.textContent = 'offline';
    badge.className = 'badge off';
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 10000);
  };
}

// ------------------------------------------------------------ results

const num = (text) => (text === undefined || text === '' ? NaN : parseFloat(text));

async function refreshResults() {
  let doc;
  try {
    doc = await call('GET', '/results?limit=5000');
  } catch (e) {
    if (e.status === 404) {
      $('results-job').textContent = '(no job yet)';
      return;
    }
    notice(e.message);
    return;
  }
  $('results-job').textContent = 'job ' + doc.jobId + (doc.state ? ' — ' + doc.state : '');
  renderDownloads(doc);
  if (doc.kind === 'suite') renderSuite(doc);
  else renderCampaign(doc);
}

function renderDownloads(doc) {
  const box = $('downloads');
  box.textContent = '';
  const tables = doc.kind === 'suite' ? [['scripts', '']] : [['results', 'results'], ['skipped', 'skipped'], ['index', 'index']];
  for (const [label, table] of tables) {
    const button = document.createElement('button');
    button.className = 'secondary';
    button.textContent = label + '.csv';
    button.addEventListener('click', () => download(doc.jobId, table, label));
    box.append(button);
  }
}

async function download(jobId, table, label) {
  const headers = token ? { Authorization: 'Bearer ' + token } : {};
  const query = '?format=csv&job=' + encodeURIComponent(jobId) + (table ? '&table=' + table : '');
  const res = await fetch(API + '/results' + query, { headers });
  if (!res.ok) return notice('download failed: HTTP ' + res.status);
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = jobId + '-' + label + '.csv';
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 5000);
}

function setTable(head, rows) {
  const table = $('results-table');
  const thead = table.querySelector('thead');
  const tbody = table.querySelector('tbody');
  thead.textContent = '';
  tbody.textContent = '';
  const tr = document.createElement('tr');
  for (const h of head) {
    const th = document.createElement('th');
    th.textContent = h;
    tr.append(th);
  }
  thead.append(tr);
  for (const { cells, className } of rows) {
    const row = document.createElement('tr');
    if (className) row.className = className;
    for (const cell of cells) {
      const td = document.createElement('td');
      if (cell instanceof Node) td.append(cell); else td.textContent = cell;
      row.append(td);
    }
    tbody.append(row);
  }
}

function fmt(value, digits) {
  return isFinite(value) ? value.toFixed(digits) : 'nan';
}

function renderCampaign(doc) {
  const functions = doc.functions || [];
  const rows = (doc.results && doc.results.rows) || [];
  const series = { success: [], latency: [], cpu: [] };
  const tableRows = [];
  for (const row of rows) {
    const present = functions.filter((f) => row['function_' + f]);
    const nodeOver = row.overloaded_node === '1';
    const cpu = num(row.cpu_usage_node);
    let over = nodeOver;
    for (const f of present) {
      const point = { fn: f, x: num(row['rate_function_' + f]), over: nodeOver || row['overloaded_function_' + f] === '1' };
      over = over || point.over;
      series.success.push({ ...point, y: num(row['success_rate_function_' + f]) });
      series.latency.push({ ...point, y: num(row['medium_latency_function_' + f]) });
      series.cpu.push({ ...point, y: cpu });
    }
    tableRows.push({
      className: over ? 'overloaded' : '',
      cells: [
        present.map((f) => f + '=' + row['rate_function_' + f]).join(', '),
        present.map((f) => fmt(num(row['success_rate_function_' + f]), 3)).join(' / '),
        present.map((f) => fmt(num(row['medium_latency_function_' + f]), 1)).join(' / '),
        fmt(cpu, 1),
        over ? 'yes' : 'no',
      ],
    });
  }
  setTable(['configuration (req/s)', 'success rate', 'mean latency (ms)', 'node CPU (%)', 'overloaded'], tableRows);
  const plots = $('plots');
  plots.textContent = '';
  if (rows.length === 0) return;
  plots.append(
    plot('Success rate', series.success, functions, { yMax: 1 }),
    plot('Mean latency (ms)', series.latency, functions, {}),
    plot('Node CPU (%)', series.cpu, functions, {}),
  );
}

function renderSuite(doc) {
  $('plots').textContent = '';
  const rows = (doc.scripts || []).map((s) => {
    const link = document.createElement('button');
    link.className = 'secondary';
    link.textContent = 'summary';
    link.disabled = !s.summary;
    link.addEventListener('click', async () => {
      const summary = await call('GET', '/results/summary?job=' + encodeURIComponent(doc.jobId) + '&script=' + encodeURIComponent(s.name));
      const pre = document.createElement('pre');
      pre.textContent = JSON.stringify(summary, null, 2);
      $('plots').textContent = '';
      $('plots').append(pre);
    });
    return {
      className: s.status === 'failed' ? 'overloaded' : '',
      cells: [s.name, s.status, s.exitCode === null ? '–' : s.exitCode, s.users, fmt(s.durationSeconds, 1),
        s.httpReqs === null ? '–' : s.httpReqs, s.httpReqFailedRate === null ? '–' : fmt(s.httpReqFailedRate, 3),
        s.httpReqDurationAvgMs === null ? '–' : fmt(s.httpReqDurationAvgMs, 1), s.error || '', link],
    };
  });
  setTable(['script', 'status', 'exit', 'VUs', 'duration (s)', 'requests', 'failed rate', 'mean latency (ms)', 'error', ''], rows);
}

// ------------------------------------------------------------ plots (SVG)

const SVG = 'http://www.w3.org/2000/svg';

function svg(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// The axis top at or above `value` and its number of intervals, so that
// tick labels are round: 0–1 in quarters, 0–2.5 in halves, 0–5 in ones.
function niceAxis(value) {
  if (!(value > 0)) return { top: 1, intervals: 4 };
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const [m, intervals] of [[1, 4], [2, 4], [2.5, 5], [5, 5], [10, 5]]) {
    if (m * power >= value) return { top: m * power, intervals };
  }
  return { top: 10 * power, intervals: 5 };
}

// Points against the request rate, one colour per function; overloaded
// points ringed in red. Values not measured (nan) are not drawn but counted.
function plot(title, points, functions, { yMax }) {
  const W = 340, H = 220, L = 48, R = 10, T = 24, B = 34;
  const drawn = points.filter((p) => isFinite(p.x) && isFinite(p.y));
  // A little room beyond the largest value, so no point sits on the frame.
  const xAxis = niceAxis(1.1 * Math.max(0, ...drawn.map((p) => p.x)));
  const yAxis = yMax ? { top: yMax, intervals: 4 } : niceAxis(1.1 * Math.max(0, ...drawn.map((p) => p.y)));
  const xMax = xAxis.top, yTop = yAxis.top;
  const sx = (x) => L + (x / xMax) * (W - L - R);
  const sy = (y) => H - B - (Math.min(y, yTop) / yTop) * (H - T - B);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  root.append(svg('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#999' }));
  root.append(svg('line', { x1: L, y1: T, x2: L, y2: H - B, stroke: '#999' }));
  for (let i = 0; i <= xAxis.intervals; i++) {
    const xv = (xMax * i) / xAxis.intervals;
    root.append(svg('text', { x: sx(xv), y: H - B + 13, 'text-anchor': 'middle' }, +xv.toFixed(2)));
  }
  for (let i = 0; i <= yAxis.intervals; i++) {
    const yv = (yTop * i) / yAxis.intervals;
    root.append(svg('text', { x: L - 4, y: sy(yv) + 3, 'text-anchor': 'end' }, +yv.toFixed(2)));
    root.append(svg('line', { x1: L, y1: sy(yv), x2: W - R, y2: sy(yv), stroke: '#eee' }));
  }
  root.append(svg('text', { x: (L + W - R) / 2, y: H - 4, 'text-anchor': 'middle' }, 'request rate (req/s)'));
  functions.forEach((f, i) => {
    root.append(svg('circle', { cx: L + 8 + i * 80, cy: 10, r: 4, fill: COLORS[i % COLORS.length] }));
    root.append(svg('text', { x: L + 15 + i * 80, y: 13 }, f));
  });
  for (const p of drawn) {
    const color = COLORS[Math.max(0, functions.indexOf(p.fn)) % COLORS.length];
    const dot = svg('circle', { cx: sx(p.x), cy: sy(p.y), r: 3.5, fill: color, class: p.over ? 'point overloaded' : 'point' });
    dot.append(svg('title', {}, `${p.fn} at ${p.x} req/s: ${p.y}${p.over ? ' (overloaded)' : ''}`));
    root.append(dot);
    if (p.over) root.append(svg('circle', { cx: sx(p.x), cy: sy(p.y), r: 6.5, fill: 'none', stroke: '#c62828', 'stroke-width': 1.5 }));
  }
  const figure = document.createElement('figure');
  const caption = document.createElement('figcaption');
  const missing = points.length - drawn.length;
  caption.textContent = title + (missing ? ` — ${missing} value(s) not measured` : '') + '; red ring: overloaded';
  figure.append(caption, root);
  return figure;
}

// ------------------------------------------------------------ start

async function start() {
  try {
    scripts = (await call('GET', '/scripts')).scripts;
    await loadConfig();
    renderStatus(await call('GET', '/status'));
    connect();
  } catch (e) {
    notice(e.message);
  }
}

start();
