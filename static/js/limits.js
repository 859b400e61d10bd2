// The limits the server enforces on names and chat, as its login replies tell them
// (docs/protocol.md), so the page follows config.toml instead of hard-coding numbers. Until
// the first reply the page checks only what needs no number and lets the server decide.

// Far above any sane setting: a bogus reply cannot make the page do something silly.
const CAP = 100_000;

/** {nameMax, chatMax} from a login reply, or null if it carries none usable. */
export function readLimits(message) {
  const limits = message?.limits;
  const ok = (n) => Number.isInteger(n) && n > 0 && n <= CAP;
  if (!limits || !ok(limits.name_max_chars) || !ok(limits.chat_max_chars)) return null;
  return { nameMax: limits.name_max_chars, chatMax: limits.chat_max_chars };
}

/** Sets the inputs' maxlength (UTF-16 units: never more than the server's character count). */
export function applyLimits(limits, { nameInput, chatInput }) {
  if (!limits) return;
  nameInput.maxLength = limits.nameMax;
  chatInput.maxLength = limits.chatMax;
}

// Characters the server refuses in names: controls, invisible formatting, line separators.
const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

/** Why `name` (trimmed) would be refused, or null. Counted in NFC, as the server does. */
export function nameProblem(name, limits) {
  const nfc = name.normalize('NFC');
  const length = [...nfc].length;
  const max = limits?.nameMax;
  const rule = max
    ? `Names are 1 to ${max} characters, with no control or invisible characters.`
    : 'Names need at least one character, with no control or invisible characters.';
  if (length < 1 || (max && length > max) || HIDDEN.test(nfc)) return rule;
  return null;
}

/** Why chat `text` would be refused, or null. */
export function chatProblem(text, limits) {
  const max = limits?.chatMax;
  if (max && [...text].length > max) return `Messages are at most ${max} characters.`;
  return null;
}
