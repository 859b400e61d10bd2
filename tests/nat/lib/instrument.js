// Injected into every page before the page's own scripts (Playwright addInitScript), so the test
// sees the web client's RTCPeerConnection from the inside without the client having to export it:
//  - keeps every connection the page makes (the newest open one is "the call");
//  - records which candidate types were gathered locally and which arrived from the peer
//    (trickled or inside the SDP), so the STUN-only control can prove srflx candidates were
//    gathered AND exchanged before it declares the call failed;
//  - applies the test's ICE-server policy to what the page got from callbox's login reply:
//    "all" (unchanged), "stun-only" (TURN withheld: only stun: URLs survive).
// It defines window.__nat and nothing else; the page's own behaviour is unchanged under "all".
// Plain function (no imports): Playwright serialises it into the page.
export function instrument(policy) {
  const Native = window.RTCPeerConnection;
  if (!Native || window.__nat) return;
  const pcs = [];
  const local = new Set();
  const remote = new Set();
  const iceUrlsSeen = [];
  // The login ids in the TURN usernames callbox handed this page ("<expiry>:<login id>"): its
  // allocation log lines name the login by that id, never by the person's name.
  const turnLogins = new Set();
  // "type address" of every candidate gathered and received, for diagnostics and the families.
  const localList = [];
  // icecandidateerror events (a STUN/TURN server that could not be reached or refused).
  const candidateErrors = [];
  const remoteList = [];
  const list = (into, line) => {
    const m = / (\S+) \d+ typ (host|srflx|prflx|relay)\b/.exec(line || '');
    if (m && into.length < 200) into.push(`${m[2]} ${m[1]}`);
  };
  // Every connection and ICE state any of the page's connections went through, in order: the
  // client restarts ICE the moment a connection fails, so polling alone could miss "failed".
  const history = [];
  const note = (what) => {
    if (history.length < 500) history.push(what);
  };

  const typeOf = (line) => {
    const m = / typ (host|srflx|prflx|relay)\b/.exec(line || '');
    return m ? m[1] : null;
  };
  const noteSdp = (desc) => {
    for (const line of String(desc?.sdp || '').split(/\r?\n/)) {
      if (line.startsWith('a=candidate:')) {
        const t = typeOf(line);
        if (t) remote.add(t);
        list(remoteList, line);
      }
    }
  };
  const filter = (config) => {
    if (!config || !Array.isArray(config.iceServers)) return config;
    for (const s of config.iceServers) {
      for (const u of [].concat(s.urls || s.url || [])) iceUrlsSeen.push(String(u).split('?')[0].split(':')[0]);
      const login = String(s.username || '').split(':')[1];
      if (login && turnLogins.size < 20) turnLogins.add(login);
    }
    if (policy !== 'stun-only') return config;
    const iceServers = [];
    for (const s of config.iceServers) {
      const urls = [].concat(s.urls || s.url || []).filter((u) => /^stun:/i.test(u));
      if (urls.length) iceServers.push({ urls });
    }
    return { ...config, iceServers };
  };

  class NatTestPeerConnection extends Native {
    constructor(config, ...rest) {
      super(filter(config), ...rest);
      pcs.push(this);
      // Registered before the page's own handlers, so the state is seen before any reaction.
      this.addEventListener('connectionstatechange', () => note(`connection:${this.connectionState}`));
      this.addEventListener('iceconnectionstatechange', () => note(`ice:${this.iceConnectionState}`));
      this.addEventListener('icecandidateerror', (e) => {
        if (candidateErrors.length < 50) candidateErrors.push(`${e.url} ${e.address ?? ''} ${e.errorCode} ${e.errorText}`);
      });
      this.addEventListener('icecandidate', (e) => {
        const t = typeOf(e.candidate?.candidate);
        if (t) local.add(t);
        list(localList, e.candidate?.candidate);
      });
    }
    setConfiguration(config) {
      return super.setConfiguration(filter(config));
    }
    addIceCandidate(candidate, ...rest) {
      const t = typeOf(candidate?.candidate);
      if (t) remote.add(t);
      list(remoteList, candidate?.candidate);
      return super.addIceCandidate(candidate, ...rest);
    }
    setRemoteDescription(desc, ...rest) {
      noteSdp(desc);
      return super.setRemoteDescription(desc, ...rest);
    }
  }
  window.RTCPeerConnection = NatTestPeerConnection;

  const current = () => [...pcs].reverse().find((pc) => pc.connectionState !== 'closed') || pcs[pcs.length - 1];

  const candidateInfo = (c) => c && {
    type: c.candidateType,
    address: c.address ?? c.ip ?? null,
    port: c.port,
    protocol: c.protocol,
    relayProtocol: c.relayProtocol ?? null,
    url: c.url ?? null,
  };

  // Everything the test asserts on, as plain data.
  async function snapshot() {
    const pc = current();
    const out = {
      connections: pcs.length,
      iceServerSchemes: [...new Set(iceUrlsSeen)],
      turnLogins: [...turnLogins],
      gathered: [...local],
      received: [...remote],
      gatheredList: [...localList],
      receivedList: [...remoteList],
      candidateErrors: [...candidateErrors],
      history: [...history],
    };
    if (!pc) return out;
    out.connectionState = pc.connectionState;
    out.iceConnectionState = pc.iceConnectionState;
    out.iceGatheringState = pc.iceGatheringState;
    const report = await pc.getStats();
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    let selectedId = null;
    let framesDecoded = 0;
    let videoInbound = 0;
    const pairs = [];
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) selectedId = s.selectedCandidatePairId;
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        videoInbound += 1;
        framesDecoded += s.framesDecoded || 0;
      }
      if (s.type === 'candidate-pair') {
        pairs.push({
          id: s.id,
          state: s.state,
          nominated: !!s.nominated,
          local: byId.get(s.localCandidateId)?.candidateType,
          remote: byId.get(s.remoteCandidateId)?.candidateType,
          requestsSent: s.requestsSent || 0,
          responsesReceived: s.responsesReceived || 0,
        });
      }
    });
    if (!selectedId) {
      const p = [...byId.values()].find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
      selectedId = p?.id ?? null;
    }
    const sel = selectedId && byId.get(selectedId);
    out.selected = sel
      ? {
          local: candidateInfo(byId.get(sel.localCandidateId)),
          remote: candidateInfo(byId.get(sel.remoteCandidateId)),
          rtt: sel.currentRoundTripTime ?? null,
        }
      : null;
    out.framesDecoded = framesDecoded;
    out.videoInbound = videoInbound;
    out.pairs = pairs;
    return out;
  }

  Object.defineProperty(window, '__nat', { value: Object.freeze({ snapshot, policy }), enumerable: false });
}
