// Camera, microphone and screen: getting them, explaining in plain words why not, and falling
// back to what is available (audio only, video only, or receive-only) so a call still happens.

/** Words a person can act on, for a getUserMedia/getDisplayMedia failure. */
export function explainMediaError(error, what = 'camera or microphone') {
  switch (error?.name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
    case 'SecurityError':
      return `Permission to use your ${what} was denied. Allow it in the browser's address bar to be seen and heard.`;
    case 'NotFoundError':
    case 'DevicesNotFoundError':
      return `No ${what} was found.`;
    case 'NotReadableError':
    case 'TrackStartError':
      return `Your ${what} is busy (another app may be using it).`;
    case 'OverconstrainedError':
      return `The chosen ${what} is no longer available.`;
    case 'AbortError':
      return `Your ${what} could not be started.`;
    case 'TypeError':
      return 'This page needs a secure (https) connection to use camera and microphone.';
    default:
      return `Your ${what} could not be used (${error?.name ?? 'unknown error'}).`;
  }
}

const VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 } };

/**
 * Gets the best stream available. Returns {stream, problems}: stream may be null (receive-only),
 * problems are human messages for what was missing.
 */
export async function getLocalMedia({ audioId, videoId } = {}) {
  if (!navigator.mediaDevices?.getUserMedia) {
    return {
      stream: null,
      problems: ['This browser cannot use a camera here (it needs https). You can still receive the call.'],
    };
  }
  const audio = audioId ? { deviceId: { exact: audioId } } : true;
  const video = videoId ? { ...VIDEO, deviceId: { exact: videoId } } : VIDEO;
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio, video }), problems: [] };
  } catch (error) {
    const first = error;
    if (['NotAllowedError', 'SecurityError', 'TypeError'].includes(first.name)) {
      return { stream: null, problems: [`${explainMediaError(first)} The call continues receive-only.`] };
    }
    // One device may be missing or busy while the other works.
    for (const [constraints, missing] of [
      [{ audio }, 'camera'],
      [{ video }, 'microphone'],
    ]) {
      try {
        const stream = await navigator.mediaDevices.getUserMedia(constraints);
        return { stream, problems: [explainMediaError(first, missing)] };
      } catch {
        // try the next
      }
    }
    return { stream: null, problems: [`${explainMediaError(first)} The call continues receive-only.`] };
  }
}

export async function getCameraTrack(deviceId) {
  const video = deviceId ? { ...VIDEO, deviceId: { exact: deviceId } } : VIDEO;
  const stream = await navigator.mediaDevices.getUserMedia({ video });
  return stream.getVideoTracks()[0];
}

export async function getMicTrack(deviceId) {
  const audio = deviceId ? { deviceId: { exact: deviceId } } : true;
  const stream = await navigator.mediaDevices.getUserMedia({ audio });
  return stream.getAudioTracks()[0];
}

export async function getScreenTrack() {
  const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  return stream.getVideoTracks()[0];
}

/** {cameras, mics}: lists of {id, label}. Labels appear once permission was granted. */
export async function listDevices() {
  if (!navigator.mediaDevices?.enumerateDevices) return { cameras: [], mics: [] };
  const devices = await navigator.mediaDevices.enumerateDevices();
  const pick = (kind, fallback) =>
    devices
      .filter((d) => d.kind === kind && d.deviceId)
      .map((d, i) => ({ id: d.deviceId, label: d.label || `${fallback} ${i + 1}` }));
  return { cameras: pick('videoinput', 'Camera'), mics: pick('audioinput', 'Microphone') };
}
