// DOM rendering. Everything other people send (names, chat text) goes in with textContent,
// never innerHTML, so it is always shown as text.

export const $ = (id) => document.getElementById(id);

export function show(element, visible) {
  element.hidden = !visible;
}

/** Most people shown at once: a room of thousands must not become thousands of DOM nodes. */
export const USERS_SHOWN = 100;
const collator = new Intl.Collator(undefined, { sensitivity: 'base' });

/**
 * The online list: each other person is a button that calls them. Only the first
 * USERS_SHOWN names matching `filter` (case-insensitive substring) are rendered; `count` shows
 * how many are online, and a hint says how many more match.
 */
export function renderUsers(list, users, { me, canCall, onCall, filter = '', count }) {
  list.replaceChildren();
  const needle = filter.trim().toLowerCase();
  const matching = needle ? users.filter((name) => name.toLowerCase().includes(needle)) : users;
  const sorted = [...matching].sort(collator.compare);
  if (count) count.textContent = `(${users.length})`;
  for (const name of sorted.slice(0, USERS_SHOWN)) {
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'user';
    button.dataset.user = name;
    const isMe = name === me;
    button.textContent = isMe ? `${name} (you)` : name;
    button.setAttribute('aria-label', isMe ? `${name} (you)` : `Call ${name}`);
    button.disabled = isMe || !canCall;
    if (!isMe) button.addEventListener('click', () => onCall(name));
    item.append(button);
    list.append(item);
  }
  const hint = (text) => {
    const item = document.createElement('li');
    item.className = 'hint';
    item.dataset.testid = 'user-list-more';
    item.textContent = text;
    list.append(item);
  };
  if (sorted.length > USERS_SHOWN) {
    hint(`${sorted.length - USERS_SHOWN} more: type a name to find them.`);
  } else if (users.length === 0) {
    hint('Nobody else is here yet.');
  } else if (sorted.length === 0) {
    hint('Nobody by that name is online.');
  }
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

/** Appends one chat line; keeps the log bounded so a long session does not grow forever. */
export function appendChat(log, { name, text, date, mine, system }) {
  const item = document.createElement('li');
  item.className = system ? 'chat-line system' : mine ? 'chat-line mine' : 'chat-line';
  const when = new Date(typeof date === 'number' ? date : Date.now());
  const time = document.createElement('time');
  time.dateTime = when.toISOString();
  time.textContent = timeFormat.format(when);
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = system ? '' : name;
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  item.append(time, ' ', who, system ? '' : ': ', body);
  log.append(item);
  while (log.children.length > 500) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
}

export function fillSelect(select, devices, currentId) {
  select.replaceChildren();
  for (const { id, label } of devices) {
    const option = document.createElement('option');
    option.value = id;
    option.textContent = label;
    option.selected = id === currentId;
    select.append(option);
  }
  select.disabled = devices.length < 2;
}

export function setPressed(button, pressed, labelOn, labelOff) {
  button.setAttribute('aria-pressed', String(pressed));
  button.textContent = pressed ? labelOn : labelOff;
}
