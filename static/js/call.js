// One call with one peer: the RTCPeerConnection, its "perfect negotiation" (W3C pattern: the
// callee is polite, so simultaneous offers settle without a deadlock), trickle ICE, ICE restart
// on failure, and the local tracks (mute, camera off, device switch, screen share) swapped with
// replaceTrack so none of them causes a renegotiation.

import { getCameraTrack, getMicTrack, getScreenTrack } from './media.js';
import { summarize } from './stats.js';

const DISCONNECTED_GRACE_MS = 4000;
const MAX_ICE_RESTARTS = 20;

export class Call extends EventTarget {
  /**
   * @param {object} o
   * @param {string} o.peer the other person's name
   * @param {boolean} o.polite true for the callee
   * @param {RTCIceServer[]} o.iceServers from the login reply / ice-servers updates
   * @param {boolean} o.relayOnly ?relay=1: force the TURN path
   * @param {(m: object) => void} o.send sends a targeted message to the peer
   * @param {MediaStream|null} o.localStream camera/mic (null: receive-only)
   */
  constructor({ peer, polite, iceServers, relayOnly, send, localStream }) {
    super();
    this.peer = peer;
    this.polite = polite;
    this.send = send;
    this.localStream = localStream;
    this.cameraTrack = localStream?.getVideoTracks()[0] ?? null;
    this.micTrack = localStream?.getAudioTracks()[0] ?? null;
    this.screenTrack = null;
    this.micOn = true;
    this.cameraOn = Boolean(this.cameraTrack);
    this.remoteStream = new MediaStream();
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.tracksAttached = false;
    this.closed = false;
    this.incoming = Promise.resolve();
    this.lastSummary = null;
    this.restarts = 0;
    this.mediaOps = Promise.resolve();

    this.pc = new RTCPeerConnection({
      iceServers: iceServers ?? [],
      iceTransportPolicy: relayOnly ? 'relay' : 'all',
    });
    this.pc.addEventListener('negotiationneeded', () => this.onNegotiationNeeded());
    this.pc.addEventListener('icecandidate', ({ candidate }) => {
      if (candidate) this.send({ type: 'new-ice-candidate', candidate: candidate.toJSON() });
    });
    this.pc.addEventListener('track', ({ track, streams }) => {
      const stream = streams[0];
      if (stream && stream !== this.remoteStream) {
        this.remoteStream = stream;
      } else if (!this.remoteStream.getTracks().includes(track)) {
        this.remoteStream.addTrack(track);
      }
      this.emit('remote-stream', { stream: this.remoteStream });
    });
    this.pc.addEventListener('connectionstatechange', () => this.onConnectionState());
    this.statsTimer = setInterval(() => this.refreshStats(), 1000);
  }

  /** Caller side: attach tracks now; that fires negotiationneeded and the first offer. */
  start() {
    this.attachTracks();
  }

  attachTracks() {
    if (this.tracksAttached) return;
    this.tracksAttached = true;
    const stream = this.localStream ?? new MediaStream();
    for (const kind of ['audio', 'video']) {
      const track = kind === 'audio' ? this.micTrack : this.cameraTrack;
      if (track) {
        this.pc.addTrack(track, stream);
      } else if (!this.pc.getTransceivers().some((t) => t.receiver.track.kind === kind)) {
        // No device of this kind: still receive the other side's.
        this.pc.addTransceiver(kind, { direction: 'recvonly' });
      }
    }
  }

  async onNegotiationNeeded() {
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      this.send({ type: 'video-offer', sdp: this.pc.localDescription.toJSON() });
    } catch (error) {
      this.emit('error', { error });
    } finally {
      this.makingOffer = false;
    }
  }

  /** video-offer / video-answer / new-ice-candidate from the peer, handled strictly in order. */
  handle(message) {
    this.incoming = this.incoming
      .then(() => this.process(message))
      .catch((error) => this.emit('error', { error }));
    return this.incoming;
  }

  async process(message) {
    if (this.closed) return;
    if (message.type === 'video-offer' || message.type === 'video-answer') {
      const description = toDescription(message);
      if (!description) return;
      const readyForOffer =
        !this.makingOffer && (this.pc.signalingState === 'stable' || this.settingRemoteAnswer);
      const collision = description.type === 'offer' && !readyForOffer;
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      this.settingRemoteAnswer = description.type === 'answer';
      await this.pc.setRemoteDescription(description);
      this.settingRemoteAnswer = false;
      if (description.type === 'offer') {
        // Callee: put our tracks into the transceivers the offer created, then answer.
        this.attachTracks();
        await this.pc.setLocalDescription();
        this.send({ type: 'video-answer', sdp: this.pc.localDescription.toJSON() });
      }
    } else if (message.type === 'new-ice-candidate' && message.candidate) {
      try {
        await this.pc.addIceCandidate(message.candidate);
      } catch (error) {
        if (!this.ignoreOffer) throw error;
      }
    }
  }

  onConnectionState() {
    const state = this.pc.connectionState;
    clearTimeout(this.restartTimer);
    if (state === 'failed') {
      this.restartIce();
    } else if (state === 'disconnected') {
      // Often a blip that heals by itself; if not, do not wait the ~30 s until "failed".
      this.restartTimer = setTimeout(() => {
        if (this.pc.connectionState === 'disconnected') this.restartIce();
      }, DISCONNECTED_GRACE_MS);
    }
    this.emit('state', { state });
    this.refreshStats();
  }

  /** The path broke (network change, NAT rebinding, TURN restart): gather again, keep the call. */
  restartIce() {
    if (this.closed || this.restarts >= MAX_ICE_RESTARTS) return;
    this.restarts += 1;
    this.pc.restartIce();
  }

  /**
   * Called when the peer is (again) reachable over signaling while we are not connected: an
   * offer we sent while either side was offline was lost, so send it again (it carries the
   * candidates gathered so far).
   */
  resync() {
    if (this.closed || this.pc.connectionState === 'connected') return;
    if (this.pc.signalingState === 'have-local-offer' && this.pc.localDescription) {
      this.send({ type: 'video-offer', sdp: this.pc.localDescription.toJSON() });
    }
  }

  setIceServers(iceServers) {
    if (this.closed) return;
    try {
      this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers });
    } catch (error) {
      this.emit('error', { error });
    }
  }

  videoSender() {
    return this.videoTransceiver()?.sender ?? null;
  }

  videoTransceiver() {
    return this.pc.getTransceivers().find((t) => !t.stopped && t.receiver.track.kind === 'video') ?? null;
  }

  audioSender() {
    return this.pc.getTransceivers().find((t) => !t.stopped && t.receiver.track.kind === 'audio')?.sender ?? null;
  }

  /** The track the video sender should carry now. */
  outgoingVideo() {
    if (this.screenTrack) return this.screenTrack;
    return this.cameraOn ? this.cameraTrack : null;
  }

  async putVideo() {
    const transceiver = this.videoTransceiver();
    const track = this.outgoingVideo();
    if (!transceiver) return;
    if (track && !transceiver.direction.includes('send')) {
      // We joined without a camera: start sending (the one renegotiation this needs).
      transceiver.direction = 'sendrecv';
      if (this.localStream) transceiver.sender.setStreams?.(this.localStream);
    }
    await transceiver.sender.replaceTrack(track);
    this.emit('local-media', {});
  }

  /**
   * Runs camera, microphone and screen changes one at a time, in click order. Each awaits a
   * device, so two overlapping ones (a double click, camera on then hang-up) would each start
   * a device and one would stay live, unseen and never stopped. Muting stays synchronous.
   */
  serial(op) {
    const run = this.mediaOps.then(() => (this.closed ? undefined : op()));
    this.mediaOps = run.catch(() => {});
    return run;
  }

  /** A device that arrived after the call ended is stopped at once. */
  stillWanted(track) {
    if (!this.closed) return true;
    track?.stop();
    return false;
  }

  setMic(on) {
    this.micOn = on;
    if (this.micTrack) this.micTrack.enabled = on;
    this.emit('local-media', {});
  }

  setCamera(on) {
    return this.serial(() => this.applyCamera(on));
  }

  async applyCamera(on) {
    if (on === this.cameraOn) return;
    if (on) {
      const track = await getCameraTrack(this.cameraId);
      if (!this.stillWanted(track)) return;
      this.cameraTrack = track;
      this.replaceLocal(this.cameraTrack, 'video');
      this.cameraOn = true;
    } else {
      // Stop the camera (its light goes off) and send nothing rather than black frames.
      this.cameraOn = false;
      this.cameraTrack?.stop();
      if (this.cameraTrack) this.localStream?.removeTrack(this.cameraTrack);
      this.cameraTrack = null;
    }
    await this.putVideo();
  }

  switchCamera(deviceId) {
    this.cameraId = deviceId;
    return this.serial(() => this.applyCameraChoice(deviceId));
  }

  async applyCameraChoice(deviceId) {
    if (!this.cameraOn) return;
    const old = this.cameraTrack;
    const track = await getCameraTrack(deviceId);
    if (!this.stillWanted(track)) return;
    this.cameraTrack = track;
    this.replaceLocal(this.cameraTrack, 'video', old);
    old?.stop();
    await this.putVideo();
  }

  switchMic(deviceId) {
    return this.serial(() => this.applyMicChoice(deviceId));
  }

  async applyMicChoice(deviceId) {
    const old = this.micTrack;
    const track = await getMicTrack(deviceId);
    if (!this.stillWanted(track)) return;
    this.micTrack = track;
    // Read after the await: a mute clicked meanwhile holds for the new microphone too.
    this.micTrack.enabled = this.micOn;
    this.replaceLocal(this.micTrack, 'audio', old);
    old?.stop();
    const transceiver = this.pc.getTransceivers().find((t) => !t.stopped && t.receiver.track.kind === 'audio');
    if (transceiver && !transceiver.direction.includes('send')) transceiver.direction = 'sendrecv';
    await transceiver?.sender.replaceTrack(this.micTrack);
    this.emit('local-media', {});
  }

  replaceLocal(track, kind, old) {
    if (!this.localStream) this.localStream = new MediaStream();
    for (const t of this.localStream.getTracks()) {
      if (t.kind === kind && (t === old || kind === 'video')) this.localStream.removeTrack(t);
    }
    this.localStream.addTrack(track);
  }

  startScreenShare() {
    return this.serial(() => this.applyScreenShare());
  }

  async applyScreenShare() {
    if (this.screenTrack) return;
    const track = await getScreenTrack();
    if (!this.stillWanted(track)) return;
    this.screenTrack = track;
    // The browser's own "Stop sharing" button ends the track.
    track.addEventListener('ended', () => {
      if (this.screenTrack === track) this.stopScreenShare();
    });
    await this.putVideo();
  }

  stopScreenShare() {
    return this.serial(async () => {
      const track = this.screenTrack;
      if (!track) return;
      this.screenTrack = null;
      track.stop();
      await this.putVideo();
    });
  }

  refreshStats() {
    if (this.closed) return;
    summarize(this.pc)
      .then((summary) => {
        if (this.closed) return;
        this.lastSummary = summary;
        this.emit('stats', { summary, state: this.pc.connectionState });
      })
      .catch(() => {});
  }

  /** Ends the call here: tracks stopped, connection closed. Idempotent. */
  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.statsTimer);
    clearTimeout(this.restartTimer);
    for (const track of [this.cameraTrack, this.micTrack, this.screenTrack]) track?.stop();
    this.localStream?.getTracks().forEach((t) => t.stop());
    for (const t of this.pc.getTransceivers()) t.receiver.track?.stop();
    this.pc.close();
    this.emit('closed', {});
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** Accepts both {sdp: RTCSessionDescriptionInit} (MDN) and {sdp: "v=0..."} shapes. */
function toDescription(message) {
  const type = message.type === 'video-offer' ? 'offer' : 'answer';
  const sdp = message.sdp;
  if (typeof sdp === 'string') return { type, sdp };
  if (sdp && typeof sdp.sdp === 'string') return { type: sdp.type === 'offer' || sdp.type === 'answer' ? sdp.type : type, sdp: sdp.sdp };
  return null;
}
