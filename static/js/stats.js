// Reads RTCPeerConnection.getStats() into the few facts the status line and the tests need:
// which candidate pair carries the call (direct or relayed through callbox's TURN), its
// round-trip time, and how much media arrives.

export async function summarize(pc) {
  const report = await pc.getStats();
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  let pair = null;
  report.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) ?? pair;
  });
  if (!pair) {
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.state === 'succeeded' && (s.nominated || s.selected) && !pair) pair = s;
    });
  }
  const local = pair ? byId.get(pair.localCandidateId) : null;
  const remote = pair ? byId.get(pair.remoteCandidateId) : null;
  const inbound = { video: null, audio: null };
  const outbound = { video: null, audio: null };
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && (s.kind === 'video' || s.kind === 'audio')) {
      inbound[s.kind] = {
        packetsReceived: s.packetsReceived ?? 0,
        bytesReceived: s.bytesReceived ?? 0,
        framesDecoded: s.framesDecoded ?? 0,
        frameWidth: s.frameWidth ?? 0,
        frameHeight: s.frameHeight ?? 0,
        totalAudioEnergy: s.totalAudioEnergy ?? 0,
        audioLevel: s.audioLevel ?? 0,
      };
    }
    if (s.type === 'outbound-rtp' && (s.kind === 'video' || s.kind === 'audio')) {
      outbound[s.kind] = { packetsSent: s.packetsSent ?? 0, framesEncoded: s.framesEncoded ?? 0 };
    }
  });
  // Counts only (no addresses): enough to tell "gathered srflx and exchanged them" apart from
  // "never got that far" when a path fails.
  const candidates = { local: {}, remote: {} };
  report.forEach((s) => {
    const side = s.type === 'local-candidate' ? 'local' : s.type === 'remote-candidate' ? 'remote' : null;
    if (side && s.candidateType) candidates[side][s.candidateType] = (candidates[side][s.candidateType] ?? 0) + 1;
  });
  const localType = local?.candidateType ?? null;
  const remoteType = remote?.candidateType ?? null;
  return {
    pair: pair
      ? {
          localType,
          remoteType,
          localProtocol: local?.protocol ?? null,
          relayProtocol: local?.relayProtocol ?? null,
          localAddress: local?.address ?? null,
          localPort: local?.port ?? null,
          remoteAddress: remote?.address ?? null,
          remotePort: remote?.port ?? null,
          rttMs: pair.currentRoundTripTime != null ? Math.round(pair.currentRoundTripTime * 1000) : null,
        }
      : null,
    relayed: localType === 'relay' || remoteType === 'relay',
    candidates,
    inbound,
    outbound,
  };
}

/** One short line: "connected · relayed through the server · 12 ms". */
export function describe(connectionState, summary) {
  const words = {
    new: 'connecting',
    connecting: 'connecting',
    connected: 'connected',
    disconnected: 'reconnecting',
    failed: 'reconnecting',
    closed: 'call ended',
  };
  const parts = [words[connectionState] ?? connectionState];
  if (connectionState === 'connected' && summary?.pair) {
    parts.push(summary.relayed ? 'relayed through the server' : 'direct');
    if (summary.pair.rttMs != null) parts.push(`${summary.pair.rttMs} ms round trip`);
  }
  return parts.join(' · ');
}
