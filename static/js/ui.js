// DOM rendering. Everything other people send (names, chat text) goes in with textContent,
// never innerHTML, so it is always shown as text.

export const $ = (id) => document.getElementById(id);

export function show(element, visible) {
  element.hidden = !visible;
}

/** The online list: each other person is a button that calls them. */
export function renderUsers(list, users, { me, canCall, onCall }) {
  list.replaceChildren();
  const sorted = [...users].sort((a, b) => a.localeCompare(b));
  for (const name of sorted) {
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
  if (sorted.length === 0) {
    const item = document.createElement('li');
    item.className = 'hint';
    item.textContent = 'Nobody else is here yet.';
    list.append(item);
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
