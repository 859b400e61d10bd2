// Remembers who this tab is in which room, so a reload or a dropped network logs straight back
// in and reclaims the name with the server's token. The token lives in sessionStorage (per tab):
// two tabs of one browser must not fight over one name. The last name used is kept in
// localStorage only to pre-fill the form.

const key = (room) => `callbox.session.${room}`;

export function roomFromLocation(loc = window.location) {
  const match = /^\/r\/([^/]+)\/?$/.exec(loc.pathname);
  if (!match) return 'lobby';
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return match[1];
  }
}

export function loadSession(room) {
  try {
    const raw = sessionStorage.getItem(key(room));
    if (!raw) return null;
    const value = JSON.parse(raw);
    if (typeof value?.name !== 'string') return null;
    return value;
  } catch {
    return null;
  }
}

export function saveSession(room, session) {
  try {
    sessionStorage.setItem(key(room), JSON.stringify(session));
    localStorage.setItem('callbox.lastName', session.name);
  } catch {
    // Storage can be disabled; the page still works, it just forgets on reload.
  }
}

export function clearSession(room) {
  try {
    sessionStorage.removeItem(key(room));
  } catch {
    // See saveSession.
  }
}

export function lastName() {
  try {
    return localStorage.getItem('callbox.lastName') ?? '';
  } catch {
    return '';
  }
}
