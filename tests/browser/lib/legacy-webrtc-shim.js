// Test-only stand-ins for the 2016 browser APIs the seed tutorial's page uses and today's
// Chromium no longer has, injected before the page's own scripts (Playwright addInitScript), so
// the page's code runs exactly as written. Chromium still has webkitGetUserMedia,
// webkitRTCPeerConnection, addStream and onaddstream; what it dropped is
// URL.createObjectURL(MediaStream) and playing such a URL through `video.src`, so:
//   - URL.createObjectURL(stream) returns a blob: URL naming the stream;
//   - setting a media element's `src` to that URL plays the stream (srcObject), and setting it
//     to anything else detaches the stream, as `remoteVideo.src = null` did then.
// One addition that is not an old API: the ICE servers the page asks for are recorded in
// window.__legacyShim.askedIceServers, and those not on loopback (the tutorial's public Google
// STUN server) are dropped, so the test never sends a packet off the machine even outside the
// loopback-only namespace run.sh uses; on loopback, host candidates connect anyway.
(() => {
  const streams = new Map();
  let next = 0;
  const shim = { askedIceServers: [], usedIceServers: [], objectUrls: 0 };
  window.__legacyShim = shim;

  const nativeCreate = URL.createObjectURL.bind(URL);
  URL.createObjectURL = function createObjectURL(object) {
    if (object instanceof MediaStream) {
      next += 1;
      shim.objectUrls += 1;
      const url = `blob:${location.origin}/legacy-mediastream-${next}`;
      streams.set(url, object);
      return url;
    }
    return nativeCreate(object);
  };

  const src = Object.getOwnPropertyDescriptor(HTMLMediaElement.prototype, 'src');
  Object.defineProperty(HTMLMediaElement.prototype, 'src', {
    configurable: true,
    enumerable: src.enumerable,
    get() {
      return src.get.call(this);
    },
    set(value) {
      const stream = streams.get(String(value));
      if (stream) {
        this.srcObject = stream;
        return;
      }
      this.srcObject = null;
      src.set.call(this, value);
    },
  });

  const loopback = (url) => /^(stuns?|turns?):(127\.|\[::1\]|localhost[:?]|localhost$)/i.test(url);
  const Native = window.webkitRTCPeerConnection ?? window.RTCPeerConnection;
  function LegacyPeerConnection(configuration, ...rest) {
    const asked = configuration?.iceServers ?? [];
    shim.askedIceServers.push(...asked.map((s) => ({ ...s })));
    const kept = asked.filter((s) => {
      const urls = [].concat(s.urls ?? s.url ?? []);
      return urls.length > 0 && urls.every(loopback);
    });
    shim.usedIceServers.push(...kept);
    return new Native({ ...configuration, iceServers: kept }, ...rest);
  }
  LegacyPeerConnection.prototype = Native.prototype;
  window.webkitRTCPeerConnection = LegacyPeerConnection;
})();
