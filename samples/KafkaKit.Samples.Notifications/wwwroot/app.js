// The notifications page: no framework, no build step. Pick who you are, send to someone else, and watch your own
// notifications arrive through a WebSocket (which replays what arrived while you were offline, and reconnects with the
// last id it saw), or through Server-Sent Events when no WebSocket gets through (or with ?transport=sse; EventSource
// reconnects by itself and sends Last-Event-ID).
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  me: null, users: [], source: null, socket: null, retry: null, lastId: null, items: new Map(),
  transport: new URLSearchParams(location.search).get('transport') === 'sse' || !('WebSocket' in window) ? 'sse' : 'websocket',
  sendUrl: '/notifications', maxLength: 1000,
};

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: 'application/json' } });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

async function init() {
  const [config, users] = await Promise.all([getJson('/page-config'), getJson('/users')]);
  state.sendUrl = config.sendUrl;
  state.maxLength = config.maxMessageLength;
  state.users = users;
  $('message').maxLength = state.maxLength;
  for (const user of users) $('me').add(new Option(`${user.name} (${user.id})`, user.id));
  const wanted = new URLSearchParams(location.search).get('user') || localStorage.getItem('kafkakit-user');
  if (users.some((u) => u.id === wanted)) $('me').value = wanted;
  $('me').addEventListener('change', () => switchUser($('me').value));
  $('message').addEventListener('input', updateCount);
  $('send-form').addEventListener('submit', send);
  switchUser($('me').value);
}

function switchUser(userId) {
  state.me = userId;
  localStorage.setItem('kafkakit-user', userId);
  const url = new URL(location.href);
  url.searchParams.set('user', userId);
  history.replaceState(null, '', url);
  const to = $('to');
  const previous = to.value;
  to.replaceChildren(...state.users.filter((u) => u.id !== userId).map((u) => new Option(`${u.name} (${u.id})`, u.id)));
  if ([...to.options].some((o) => o.value === previous)) to.value = previous;
  connect();
}

function connect() {
  if (state.source) state.source.close();
  if (state.socket) state.socket.close();
  state.source = state.socket = null;
  clearTimeout(state.retry);
  state.items.clear();
  state.lastId = null;
  render();
  setConnection('connecting');
  if (state.transport === 'websocket') connectSocket(state.me);
  else connectEventSource(state.me);
}

function connectSocket(me) {
  const url = new URL(`/users/${encodeURIComponent(me)}/notifications/ws`, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  if (state.lastId) url.searchParams.set('lastEventId', state.lastId);
  const socket = new WebSocket(url);
  state.socket = socket;
  let opened = false;
  socket.addEventListener('open', () => { opened = true; });
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'ready') {
      setConnection('live');
    } else if (message.type === 'notification') {
      state.lastId = message.notification.id; // oldest first, then live: the last one seen is the newest
      add(message.notification, !message.replayed);
    }
  });
  socket.addEventListener('close', () => {
    if (state.socket !== socket) return; // closed by connect() for a newer connection
    state.socket = null;
    if (!opened) {
      // No WebSocket got through (a proxy without upgrades, for example): Server-Sent Events instead.
      state.transport = 'sse';
      connectEventSource(me);
      return;
    }
    setConnection('reconnecting');
    state.retry = setTimeout(() => { if (state.me === me) connectSocket(me); }, 2000);
  });
}

function connectEventSource(me) {
  const source = new EventSource(`/users/${encodeURIComponent(me)}/notifications/stream`);
  state.source = source;
  source.addEventListener('ready', async () => {
    setConnection('live');
    try {
      const recent = await getJson(`/users/${encodeURIComponent(me)}/notifications`);
      if (state.me === me) for (const n of recent) add(n, false);
    } catch (e) {
      console.warn('could not load recent notifications', e);
    }
  });
  source.addEventListener('notification', (event) => add(JSON.parse(event.data), true));
  source.addEventListener('error', () => setConnection(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting'));
}

function setConnection(text) {
  const badge = $('connection');
  badge.textContent = `${text} (${state.transport === 'sse' ? 'Server-Sent Events' : 'WebSocket'})`;
  badge.dataset.state = text;
  badge.dataset.transport = state.transport;
}

function add(notification, fresh) {
  if (notification.recipientId !== state.me || state.items.has(notification.id)) return;
  state.items.set(notification.id, { ...notification, fresh });
  render();
}

function render() {
  const items = [...state.items.values()].sort((a, b) => b.sentAt.localeCompare(a.sentAt)).slice(0, 50);
  $('inbox').replaceChildren(...items.map((n) => {
    const li = document.createElement('li');
    li.dataset.id = n.id;
    if (n.fresh) li.className = 'fresh';
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = `from ${n.senderId} at ${new Date(n.sentAt).toLocaleTimeString()}`;
    const text = document.createElement('div');
    text.className = 'text';
    text.textContent = n.message;
    li.append(meta, text);
    return li;
  }));
  $('empty').hidden = items.length > 0;
}

function updateCount() {
  $('count').textContent = `${$('message').value.length} / ${state.maxLength}`;
}

function setStatus(text, kind) {
  $('status').textContent = text;
  $('status').dataset.state = kind;
}

async function send(event) {
  event.preventDefault();
  const button = $('send');
  button.disabled = true;
  setStatus('Sending...', 'sending');
  try {
    const response = await fetch(state.sendUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ senderId: state.me, recipientId: $('to').value, message: $('message').value }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.status === 202) {
      setStatus(`Sent to ${$('to').value} (id ${body.id}).`, 'sent');
      $('message').value = '';
      updateCount();
    } else {
      const errors = body.errors ? Object.values(body.errors).flat().join(' ') : '';
      const retry = response.headers.get('Retry-After');
      setStatus(`${response.status}: ${body.title || 'failed'} ${body.detail || errors}${retry ? ` Try again in ${retry} s.` : ''}`, 'error');
    }
  } catch (e) {
    setStatus(`Could not reach the API: ${e.message}`, 'error');
  } finally {
    button.disabled = false;
  }
}

init().catch((e) => setStatus(`The page could not start: ${e.message}`, 'error'));
