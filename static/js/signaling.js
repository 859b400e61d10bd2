// The WebSocket to callbox's relay (docs/protocol.md): one socket per tab, reconnected with
// capped exponential backoff, logging back in with the saved token so the name survives a
// dropped network or a server restart. Calls do not depend on this socket: media flows
// peer to peer (or via TURN) while it is down. Events: 'state' (this socket's own state),
// 'replaced', 'session' (a server event) and 'peer' (a message another user sent or caused).

const CLOSE_REPLACED = 4001;
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];
// What the server itself sends (never with `from`).
const SESSION_TYPES = new Set(['id', 'login', 'rejectusername', 'userlist', 'presence', 'ice-servers', 'error']);

export class Signaling extends EventTarget {
  constructor(room) {
    super();
    this.room = room;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    // {name, token, accessCode} once logged in (or while trying to).
    this.session = null;
    this.loggedIn = false;
    this.state = 'offline';
  }

  url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const query = this.room === 'lobby' ? '' : `?room=${encodeURIComponent(this.room)}`;
    return `${scheme}//${location.host}/ws${query}`;
  }

  /** Opens the socket (if not open) and logs in with `session` once it is. */
  login(session) {
    this.session = session;
    this.stopped = false;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.sendLogin();
    } else if (!this.ws) {
      this.connect();
    }
  }

  /** Closes for good (log out): no reconnect. */
  logout() {
    this.stopped = true;
    this.session = null;
    this.loggedIn = false;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, 'logout');
    this.ws = null;
    this.setState('offline');
  }

  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  connect() {
    clearTimeout(this.timer);
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    let ws;
    try {
      ws = new WebSocket(this.url(), 'json');
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.addEventListener('open', () => {
      if (this.ws !== ws) return;
      this.setState('connected');
      if (this.session) this.sendLogin();
    });
    ws.addEventListener('message', (event) => {
      if (this.ws !== ws || typeof event.data !== 'string') return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message && typeof message === 'object' && typeof message.type === 'string') {
        this.onMessage(message);
      }
    });
    ws.addEventListener('close', (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.loggedIn = false;
      if (event.code === CLOSE_REPLACED) {
        // Another tab or device took this name over with our token: stay out of its way.
        this.stopped = true;
        this.setState('replaced');
        this.emit('replaced', {});
        return;
      }
      if (this.stopped) return;
      this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    this.setState('reconnecting');
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    // Jitter so a restarted server is not hit by every client in the same millisecond.
    const delay = base / 2 + Math.random() * base;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  sendLogin() {
    const { name, token, accessCode } = this.session;
    // The list once at login, then batched joined/left deltas (docs/protocol.md).
    const message = { type: 'login', name, presence: 'delta' };
    if (accessCode) message.access_code = accessCode;
    if (token) message.token = token;
    this.send(message);
  }

  /**
   * Keeps the server's own events and other people's messages apart, so that nothing a peer
   * sends can drive this page's session. The server sets `from` on everything a peer wrote or
   * caused and on nothing else (docs/protocol.md): a message with `from` goes out only as a
   * 'peer' event (calls and chat), one without it only as a 'session' event, and then only if
   * it is one of the server's event types. No message type ever becomes an event name of its
   * own, so none can pose as this object's 'state' or 'replaced'.
   */
  onMessage(message) {
    if (Object.hasOwn(message, 'from')) {
      if (typeof message.from === 'string' && message.from !== '') this.emit('peer', message);
      return;
    }
    if (!SESSION_TYPES.has(message.type)) return;
    if (message.type === 'login') {
      if (message.success === true) {
        this.attempt = 0;
        this.loggedIn = true;
        this.session = { ...this.session, name: message.name ?? this.session?.name, token: message.token };
        this.setState('online');
      } else {
        this.loggedIn = false;
      }
    }
    this.emit('session', message);
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', { state });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
