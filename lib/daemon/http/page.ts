/**
 * The status page: one HTML document, one script, one style sheet, served as they are written
 * here (no build step, no framework, no outside requests). Every run of every repo in a real
 * table; status in words and a symbol, so it reads without colour; times counted down in the
 * browser; live through the event stream; mute and unmute per run. Data is put into the page
 * with `textContent` only, never as HTML (run names come from training scripts).
 *
 * With a token file, the page asks for the token once, keeps it in the tab's `sessionStorage`
 * and sends it as `Authorization: Bearer` (the stream is read with `fetch()` for that reason);
 * it never appears in a URL. Mutations carry the CSRF token of the meta tag.
 * @module
 */

/** The page, with this daemon's CSRF token in a meta tag. */
export function pageHtml(csrfToken: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="aim-csrf" content="${csrfToken.replace(/[^A-Za-z0-9_-]/g, '')}">
<title>aim-watcher</title>
<link rel="stylesheet" href="/app.css">
<link rel="icon" href="data:,">
<script src="/app.js" defer></script>
</head>
<body>
<header>
  <h1>aim-watcher</h1>
  <p id="live" role="status" aria-live="polite">connecting…</p>
  <ul id="repos" aria-label="Repos"></ul>
</header>
<main>
  <form id="token-form" hidden>
    <label for="token">This daemon needs its access token</label>
    <input id="token" type="password" autocomplete="current-password" required>
    <button type="submit">Use token</button>
  </form>
  <p id="message" role="alert"></p>
  <section aria-labelledby="runs-title">
    <h2 id="runs-title">Runs <span id="counts"></span></h2>
    <table id="runs">
      <caption class="sr-only">Every run of every watched repo, stalled and failed first</caption>
      <thead><tr>
        <th scope="col">Status</th><th scope="col">Run</th><th scope="col">Experiment</th><th scope="col">Watched by</th>
        <th scope="col">Last progress</th><th scope="col">Stalls in</th><th scope="col">Episode</th><th scope="col">Muted</th>
        <th scope="col">Timeline</th><th scope="col">Action</th>
      </tr></thead>
      <tbody></tbody>
    </table>
    <p id="more"></p>
  </section>
  <section aria-labelledby="notifiers-title">
    <h2 id="notifiers-title">Notifiers</h2>
    <table id="notifiers">
      <thead><tr><th scope="col">Notifier</th><th scope="col">Type</th><th scope="col">Status</th><th scope="col">Delivered / failed</th><th scope="col">Last delivery</th><th scope="col">Last error</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
</body>
</html>
`
}

/** The page's style sheet. */
export const PAGE_CSS = String.raw`
.rank-row th { padding-left: 2em; font-weight: normal }
.rank-row { font-size: 0.9em }
:root { font: 14px/1.4 system-ui, sans-serif; color: #1d2330; background: #fafbfc; }
body { margin: 0 auto; padding: 0 16px 24px; max-width: 1400px; }
header { display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; border-bottom: 1px solid #d6dae0; }
h1 { font-size: 20px; margin: 12px 0; }
h2 { font-size: 16px; margin: 20px 0 8px; }
#repos { list-style: none; display: flex; gap: 12px; padding: 0; margin: 0; color: #4a5363; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e5e8ec; vertical-align: top; }
th { font-weight: 600; background: #f0f2f5; }
code { font-size: 12px; color: #4a5363; }
.status-running { color: #1a6e33; } .status-stalled { color: #a03a00; font-weight: 600; }
.status-failed { color: #b3001b; font-weight: 600; } .status-finished { color: #4a5363; }
.muted-yes { color: #5b3fa8; }
ol.timeline { list-style: none; display: flex; gap: 2px; padding: 0; margin: 0; flex-wrap: wrap; max-width: 260px; }
ol.timeline li { padding: 0 3px; border-radius: 3px; background: #eef0f3; font-size: 12px; }
ol.timeline li.k-stalled, ol.timeline li.k-failed { background: #fde3d8; } ol.timeline li.k-recovered { background: #dff3e4; }
ol.timeline li.was-muted { outline: 1px dashed #5b3fa8; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
#message:empty { display: none; } #message { color: #b3001b; }
button, select, input { font: inherit; }
form#token-form { margin: 12px 0; display: flex; gap: 8px; align-items: center; }
[hidden] { display: none !important; }
`

/** The page's script (plain browser JavaScript). */
export const PAGE_JS = String.raw`
'use strict'
var csrf = document.querySelector('meta[name="aim-csrf"]').content
var token = sessionStorage.getItem('aim-status-token')
var runs = new Map()
var notifiers = []
var repos = []
var clockOffset = 0
var MAX_ROWS = 1000
var ORDER = { stalled: 0, failed: 1, running: 2, finished: 3 }
var SYMBOL = { running: '●', stalled: '▲', failed: '✕', finished: '✓' }
var MARK = { started: '▶', report: '•', stalled: '▲', recovered: '↺', finished: '✓', failed: '✕' }

function $(id) { return document.getElementById(id) }
function el(tag, text, cls) { var e = document.createElement(tag); if (text !== undefined && text !== null) e.textContent = String(text); if (cls) e.className = cls; return e }
function now() { return Date.now() + clockOffset }
function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms) }) }
function headers(extra) { var h = Object.assign({}, extra || {}); if (token) h.Authorization = 'Bearer ' + token; return h }
function keyOf(r) { return r.repo + '\n' + r.hash }

function span(ms) {
  var s = Math.round(Math.abs(ms) / 1000)
  if (s < 60) return s + ' s'
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s'
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min'
  return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h'
}
function clock(iso) { return new Date(iso).toLocaleTimeString() }
function timeCell(iso, text) { var t = el('time', text); t.dateTime = iso; t.title = new Date(iso).toLocaleString(); return t }

function askToken() {
  var form = $('token-form')
  form.hidden = false
  $('token').focus()
  return new Promise(function (resolve) {
    form.onsubmit = function (e) {
      e.preventDefault()
      token = $('token').value.trim()
      sessionStorage.setItem('aim-status-token', token)
      form.hidden = true
      resolve()
    }
  })
}

function setLive(text) { $('live').textContent = text }

function handle(block) {
  var event = 'message', data = ''
  block.split('\n').forEach(function (line) {
    if (line.indexOf('event: ') === 0) event = line.slice(7)
    else if (line.indexOf('data: ') === 0) data += line.slice(6)
  })
  if (!data) return
  var msg = JSON.parse(data)
  if (msg.serverTime) clockOffset = Date.parse(msg.serverTime) - Date.now()
  if (event === 'hello' || event === 'repos') { repos = msg.repos; renderRepos() }
  else if (event === 'runs') {
    if (msg.full) runs.clear()
    msg.runs.forEach(function (r) { runs.set(keyOf(r), r) })
    ;(msg.removed || []).forEach(function (r) { runs.delete(keyOf(r)) })
    render()
  } else if (event === 'notifiers') { notifiers = msg.notifiers; renderNotifiers() }
}

async function stream() {
  for (;;) {
    try {
      var res = await fetch('/api/v1/events', { headers: headers({ Accept: 'text/event-stream' }), cache: 'no-store' })
      if (res.status === 401) { setLive('needs the access token'); await askToken(); continue }
      if (!res.ok) throw new Error('HTTP ' + res.status)
      setLive('live')
      var reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      var buffer = ''
      for (;;) {
        var part = await reader.read()
        if (part.done) break
        buffer += part.value
        var i
        while ((i = buffer.indexOf('\n\n')) >= 0) { handle(buffer.slice(0, i)); buffer = buffer.slice(i + 2) }
      }
    } catch (e) { /* reconnect below */ }
    setLive('reconnecting…')
    await sleep(2000)
  }
}

async function act(method, run, body) {
  $('message').textContent = ''
  var url = '/api/v1/runs/' + encodeURIComponent(run.hash) + '/mute' + (method === 'DELETE' ? '?repo=' + encodeURIComponent(run.repo) : '')
  var res = await fetch(url, { method: method, headers: headers({ 'Content-Type': 'application/json', 'X-CSRF-Token': csrf }), body: body ? JSON.stringify(body) : undefined })
  if (res.status === 401) { await askToken(); return act(method, run, body) }
  if (!res.ok) {
    var answer = await res.json().catch(function () { return {} })
    $('message').textContent = (answer.error && answer.error.message) || ('HTTP ' + res.status)
  }
}

function label(run) { return run.name || run.hash }

function ownerText(run) {
  if (run.source === 'aim') return 'Python Aim (check-ins)'
  if (!run.owner) return '—'
  if (run.ranks) return run.ranks.length + ' of ' + run.worldSize + ' ranks, over sessions'
  if (run.origin) return 'remote: process ' + run.origin.pid + ' on ' + run.origin.host + ' (' + run.origin.via + ', session ' + run.origin.session + ')'
  return (run.source === 'adopted' ? 'daemon (adopted)' : 'process') + ' ' + run.owner.pid + ' on ' + run.owner.host
}

function stallsCell(run) {
  if (run.status === 'stalled') return el('span', 'overdue')
  if (!run.stallsAt) return el('span', '—')
  var left = Date.parse(run.stallsAt) - now()
  return timeCell(run.stallsAt, left >= 0 ? 'in ' + span(left) : 'due ' + span(left) + ' ago')
}

function muteText(run) {
  if (!run.muted) return 'no'
  var m = run.mute
  var text = m.untilHealthy ? 'until healthy' : 'until ' + clock(m.until)
  return 'muted ' + text + (m.reason ? ' (' + m.reason + ')' : '')
}

function timeline(run) {
  var list = el('ol', null, 'timeline')
  list.setAttribute('aria-label', 'Timeline of ' + label(run))
  ;(run.timeline || []).slice(-12).forEach(function (m) {
    var words = (m.kind === 'report' ? (m.count || 1) + ' report' + ((m.count || 1) > 1 ? 's, last' : '') : m.kind) + ' ' + clock(m.at) + (m.muted ? ' (muted)' : '')
    var item = el('li', null, 'k-' + m.kind + (m.muted ? ' was-muted' : ''))
    item.title = words
    var glyph = el('span', MARK[m.kind] + (m.kind === 'report' && m.count > 1 ? '×' + m.count : ''))
    glyph.setAttribute('aria-hidden', 'true')
    item.appendChild(glyph)
    item.appendChild(el('span', words, 'sr-only'))
    list.appendChild(item)
  })
  return list
}

function actions(run) {
  var cell = el('td')
  if (run.muted) {
    var unmute = el('button', 'Unmute')
    unmute.type = 'button'
    unmute.setAttribute('aria-label', 'Unmute ' + label(run))
    unmute.onclick = function () { act('DELETE', run) }
    cell.appendChild(unmute)
    return cell
  }
  var choice = el('select')
  choice.setAttribute('aria-label', 'Mute ' + label(run) + ' for')
  ;[['healthy', 'until healthy'], ['1h', '1 hour'], ['4h', '4 hours'], ['1d', '1 day']].forEach(function (o) {
    var option = el('option', o[1]); option.value = o[0]; choice.appendChild(option)
  })
  var mute = el('button', 'Mute')
  mute.type = 'button'
  mute.setAttribute('aria-label', 'Mute ' + label(run))
  mute.onclick = function () {
    act('POST', run, choice.value === 'healthy' ? { repo: run.repo, untilHealthy: true } : { repo: run.repo, for: choice.value })
  }
  cell.appendChild(choice)
  cell.appendChild(mute)
  return cell
}

function row(run) {
  var tr = el('tr')
  tr.dataset.hash = run.hash
  tr.dataset.status = run.status
  var status = el('td', null, 'status-' + run.status)
  var glyph = el('span', SYMBOL[run.status] + ' ')
  glyph.setAttribute('aria-hidden', 'true')
  status.appendChild(glyph)
  status.appendChild(document.createTextNode(run.status + (run.reason ? ': ' + run.reason : '')))
  tr.appendChild(status)
  var name = el('th')
  name.scope = 'row'
  name.appendChild(el('div', label(run)))
  if (run.name) name.appendChild(el('code', run.hash))
  tr.appendChild(name)
  tr.appendChild(el('td', run.experiment || '—'))
  tr.appendChild(el('td', ownerText(run)))
  var last = el('td'); last.appendChild(timeCell(run.lastProgressAt, span(now() - Date.parse(run.lastProgressAt)) + ' ago')); tr.appendChild(last)
  var stalls = el('td'); stalls.appendChild(stallsCell(run)); tr.appendChild(stalls)
  tr.appendChild(el('td', run.episode))
  tr.appendChild(el('td', muteText(run), run.muted ? 'muted-yes' : ''))
  var tl = el('td'); tl.appendChild(timeline(run)); tr.appendChild(tl)
  tr.appendChild(actions(run))
  return tr
}

// A run of many ranks is one row; its ranks are the rows beneath it.
function rankRow(run, rank) {
  var tr = el('tr', null, 'rank-row')
  tr.dataset.hash = run.hash
  tr.dataset.rank = rank.rank
  var status = el('td', null, 'status-' + rank.status)
  status.appendChild(document.createTextNode(rank.status + (rank.reason ? ': ' + rank.reason : '')))
  tr.appendChild(status)
  var name = el('th', 'rank ' + rank.rank)
  name.scope = 'row'
  tr.appendChild(name)
  tr.appendChild(el('td', ''))
  tr.appendChild(el('td', 'process ' + rank.pid + ' on ' + rank.host + ' (session ' + rank.session + ')'))
  var last = el('td'); last.appendChild(timeCell(rank.lastProgressAt, span(now() - Date.parse(rank.lastProgressAt)) + ' ago')); tr.appendChild(last)
  var stalls = el('td')
  stalls.appendChild(rank.status === 'stalled' ? el('span', 'overdue') : rank.deadlineAt ? timeCell(rank.deadlineAt, 'due ' + clock(rank.deadlineAt)) : el('span', '—'))
  tr.appendChild(stalls)
  var rest = el('td'); rest.colSpan = 4; tr.appendChild(rest)
  return tr
}

var pending = false
function render() {
  if (pending) return
  pending = true
  requestAnimationFrame(function () {
    pending = false
    var all = Array.from(runs.values()).sort(function (a, b) {
      return (ORDER[a.status] - ORDER[b.status]) || (Date.parse(b.lastProgressAt) - Date.parse(a.lastProgressAt))
    })
    var counts = {}
    all.forEach(function (r) { counts[r.status] = (counts[r.status] || 0) + 1 })
    $('counts').textContent = '(' + ['running', 'stalled', 'failed', 'finished'].map(function (s) { return (counts[s] || 0) + ' ' + s }).join(', ') + ')'
    var body = document.createElement('tbody')
    all.slice(0, MAX_ROWS).forEach(function (r) {
      body.appendChild(row(r))
      ;(r.ranks || []).forEach(function (k) { body.appendChild(rankRow(r, k)) })
    })
    if (all.length === 0) { var empty = el('tr'); var td = el('td', 'No runs yet.'); td.colSpan = 10; empty.appendChild(td); body.appendChild(empty) }
    $('runs').replaceChild(body, $('runs').tBodies[0])
    $('more').textContent = all.length > MAX_ROWS ? 'Showing ' + MAX_ROWS + ' of ' + all.length + ' runs (the API lists all).' : ''
  })
}

function renderRepos() {
  var list = $('repos')
  list.textContent = ''
  repos.forEach(function (r) { list.appendChild(el('li', r.repo + ': ' + (r.state === 'active' ? 'sending' : r.state))) })
}

function renderNotifiers() {
  var body = document.createElement('tbody')
  notifiers.forEach(function (n) {
    var tr = el('tr')
    if (n.error) { tr.appendChild(el('td', n.repo)); var td = el('td', n.error); td.colSpan = 5; tr.appendChild(td); body.appendChild(tr); return }
    var name = el('th', n.id); name.scope = 'row'; tr.appendChild(name)
    tr.appendChild(el('td', n.type))
    tr.appendChild(el('td', n.status + (n.usable ? '' : ' (skipped: ' + n.problem + ')')))
    tr.appendChild(el('td', n.delivery.delivered + ' / ' + n.delivery.failed))
    tr.appendChild(el('td', n.delivery.lastDeliveryAt ? new Date(n.delivery.lastDeliveryAt).toLocaleString() : 'never'))
    tr.appendChild(el('td', n.delivery.lastError ? n.delivery.lastError + ' (' + new Date(n.delivery.lastErrorAt).toLocaleString() + ')' : '—'))
    body.appendChild(tr)
  })
  if (notifiers.length === 0) { var tr = el('tr'); var td = el('td', 'None configured: stalls are printed by the logger.'); td.colSpan = 6; tr.appendChild(td); body.appendChild(tr) }
  $('notifiers').replaceChild(body, $('notifiers').tBodies[0])
}

setInterval(render, 1000)
stream()
`
