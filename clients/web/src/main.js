// groovecast viewer: draws the newest pose of one performer, the beat, the BPM and measured latency.
// Served by the engine itself (same origin), so it connects back to ws://<this host>/ws.
import {
  BufferAttribute,
  BufferGeometry,
  Color,
  GridHelper,
  LineBasicMaterial,
  LineSegments,
  PerspectiveCamera,
  Points,
  PointsMaterial,
  Scene,
  WebGLRenderer,
} from "three";

const params = new URLSearchParams(location.search);
const canvas = document.getElementById("view");
const hud = {
  status: document.getElementById("status"),
  bpm: document.getElementById("bpm"),
  beat: document.getElementById("beat"),
  frame: document.getElementById("frame"),
  fps: document.getElementById("fps"),
  latency: document.getElementById("latency"),
  delivery: document.getElementById("delivery"),
  renderer: document.getElementById("renderer"),
};

// State the page exposes for tests and curious users (window.groovecast).
const state = {
  connected: false,
  frames: 0,
  lastFrameIndex: -1,
  renderer: "",
  skeleton: "",
  latencyMs: null, // end to end: source stamp (src_monotonic_ns) -> this page, p50 of the last 120 frames
  deliveryMs: null, // server publish (server_ns) -> this page
  clockOffsetMs: null,
  clockRttMs: null,
  drawnFrames: 0,
};
window.groovecast = state;

// ----------------------------------------------------------------------------------- clock sync
// The page cannot read the server's monotonic clock, and performance.timeOrigin is on a different
// clock, so we estimate offset = server_clock - performance.now() NTP-style: send our time, the
// server answers with its monotonic time; the sample with the smallest round trip wins, and the
// error is at most half that round trip (sub-millisecond on the same host).
// Keep the last 30 exchanges and trust the one with the smallest round trip. Receive times use the
// event's own timestamp, taken when the message arrived rather than when a busy page got to it.
const syncSamples = [];
let offsetMs = null;
function onPong(msg, recvMs) {
  const rtt = recvMs - msg.t;
  syncSamples.push({ rtt, offset: msg.server_ns / 1e6 - (msg.t + recvMs) / 2 });
  if (syncSamples.length > 30) syncSamples.shift();
  const best = syncSamples.reduce((a, b) => (b.rtt < a.rtt ? b : a));
  offsetMs = best.offset;
  state.clockOffsetMs = offsetMs;
  state.clockRttMs = best.rtt; // the offset is within +- rtt/2 of the truth
}

const latencies = [];
const deliveries = [];
function median(a) {
  if (!a.length) return null;
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

// ----------------------------------------------------------------------------------- rendering
let skeletons = {};
let drawer = null;

function makeWebGL() {
  const renderer = new WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  const scene = new Scene();
  scene.background = new Color(0x101018);
  const camera = new PerspectiveCamera(45, 1, 0.05, 100);
  scene.add(new GridHelper(10, 20, 0x444466, 0x282838));
  const lineGeom = new BufferGeometry();
  const lines = new LineSegments(lineGeom, new LineBasicMaterial({ color: 0x66ddff }));
  const pointGeom = new BufferGeometry();
  const points = new Points(pointGeom, new PointsMaterial({ color: 0xffcc44, size: 0.04 }));
  scene.add(lines, points);
  let nJoints = -1;
  function resize() {
    const w = canvas.clientWidth, h = canvas.clientHeight;
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
  }
  function frameCamera(r) {
    // follow the root from the front (engine space: the dancer faces +Z)
    camera.position.set(r[0], 1.2, r[2] + 3.5);
    camera.lookAt(r[0], 0.9, r[2]);
  }
  return {
    name: "webgl",
    drawEmpty() {
      lines.visible = points.visible = false;
      frameCamera([0, 0, 0]);
      resize();
      renderer.render(scene, camera);
    },
    draw(pos, parents, beatGlow) {
      lines.visible = points.visible = true;
      if (pos.length !== nJoints) {
        nJoints = pos.length;
        lineGeom.setAttribute("position", new BufferAttribute(new Float32Array((nJoints - 1) * 6), 3));
        pointGeom.setAttribute("position", new BufferAttribute(new Float32Array(nJoints * 3), 3));
      }
      const la = lineGeom.attributes.position.array;
      const pa = pointGeom.attributes.position.array;
      let k = 0;
      for (let j = 0; j < pos.length; j++) {
        pa.set(pos[j], j * 3);
        if (parents[j] >= 0) {
          la.set(pos[parents[j]], k);
          la.set(pos[j], k + 3);
          k += 6;
        }
      }
      lineGeom.attributes.position.needsUpdate = true;
      pointGeom.attributes.position.needsUpdate = true;
      lineGeom.computeBoundingSphere();
      pointGeom.computeBoundingSphere();
      lines.material.color.setHex(beatGlow ? 0xffffff : 0x66ddff);
      frameCamera(pos[0]);
      resize();
      renderer.render(scene, camera);
    },
  };
}

function make2D() {
  // Fallback when WebGL is unavailable (e.g. headless browsers without a GPU): front orthographic view.
  const ctx = canvas.getContext("2d");
  function background() {
    const w = (canvas.width = canvas.clientWidth), h = (canvas.height = canvas.clientHeight);
    ctx.fillStyle = "#101018";
    ctx.fillRect(0, 0, w, h);
    ctx.strokeStyle = "#282838";
    ctx.beginPath();
    ctx.moveTo(0, 0.9 * h);
    ctx.lineTo(w, 0.9 * h);
    ctx.stroke();
    return [w, h];
  }
  return {
    name: "canvas2d",
    drawEmpty() {
      background();
    },
    draw(pos, parents, beatGlow) {
      const [w, h] = background();
      const scale = h / 2.4;
      const r = pos[0];
      const px = (p) => w / 2 + (p[0] - r[0]) * scale;
      const py = (p) => h - 0.1 * h - p[1] * scale;
      ctx.strokeStyle = beatGlow ? "#ffffff" : "#66ddff";
      ctx.lineWidth = 3;
      ctx.beginPath();
      for (let j = 0; j < pos.length; j++) {
        if (parents[j] < 0) continue;
        ctx.moveTo(px(pos[parents[j]]), py(pos[parents[j]]));
        ctx.lineTo(px(pos[j]), py(pos[j]));
      }
      ctx.stroke();
      ctx.fillStyle = "#ffcc44";
      for (const p of pos) ctx.fillRect(px(p) - 2, py(p) - 2, 4, 4);
    },
  };
}

function pickDrawer() {
  if (params.get("renderer") !== "2d") {
    try {
      return makeWebGL();
    } catch (e) {
      console.warn("WebGL unavailable, drawing with a 2D canvas:", e);
    }
  }
  return make2D();
}

// ----------------------------------------------------------------------------------- socket
let latest = null;
let beatUntil = 0;
const frameTimes = [];

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const q = new URLSearchParams();
  for (const k of ["token", "performer"]) if (params.has(k)) q.set(k, params.get(k));
  const ws = new WebSocket(`${proto}//${location.host}/ws?${q}`);
  let pinger = null;
  ws.onopen = () => {
    state.connected = true;
    hud.status.textContent = "connected";
    const ping = () => ws.readyState === 1 && ws.send(JSON.stringify({ type: "ping", t: performance.now() }));
    for (let i = 0; i < 5; i++) setTimeout(ping, 50 * i); // a quick first estimate
    pinger = setInterval(ping, 1000);
  };
  ws.onclose = () => {
    state.connected = false;
    hud.status.textContent = "disconnected, retrying";
    clearInterval(pinger);
    setTimeout(connect, 1000);
  };
  ws.onmessage = (ev) => {
    // Chrome stamps message events when they are queued, on the performance.now() clock
    const now = ev.timeStamp > 0 ? ev.timeStamp : performance.now();
    const msg = JSON.parse(ev.data);
    if (msg.type === "hello") skeletons = msg.skeletons;
    else if (msg.type === "pong") onPong(msg, now);
    else if (msg.type === "pose") {
      state.frames++;
      state.lastFrameIndex = msg.frame_index;
      state.skeleton = msg.skeleton;
      if (offsetMs !== null) {
        latencies.push(now + offsetMs - msg.src_monotonic_ns / 1e6);
        deliveries.push(now + offsetMs - msg.server_ns / 1e6);
        if (latencies.length > 120) latencies.shift();
        if (deliveries.length > 120) deliveries.shift();
      }
      frameTimes.push(now);
      if (frameTimes.length > 60) frameTimes.shift();
      if (msg.beat) beatUntil = now + 100;
      latest = msg;
    } else if (msg.type === "error") console.warn("server:", msg.error);
  };
}

function tick() {
  const now = performance.now();
  if (!latest && drawer) drawer.drawEmpty();
  if (latest) {
    const sk = skeletons[latest.skeleton];
    if (sk && drawer) {
      drawer.draw(latest.positions, sk.parents, now < beatUntil);
      state.drawnFrames++;
    }
    hud.bpm.textContent = latest.bpm > 0 ? latest.bpm.toFixed(1) : "–";
    hud.frame.textContent = String(latest.frame_index);
    hud.beat.classList.toggle("on", now < beatUntil);
    if (frameTimes.length > 1) {
      const fps = (frameTimes.length - 1) / ((frameTimes[frameTimes.length - 1] - frameTimes[0]) / 1000);
      hud.fps.textContent = fps.toFixed(1);
    }
    state.latencyMs = median(latencies);
    state.deliveryMs = median(deliveries);
    hud.latency.textContent = state.latencyMs === null ? "…" : `${state.latencyMs.toFixed(1)} ms`;
    hud.delivery.textContent = state.deliveryMs === null ? "…" : `${state.deliveryMs.toFixed(1)} ms`;
  }
  requestAnimationFrame(tick);
}

drawer = pickDrawer();
state.renderer = drawer.name;
hud.renderer.textContent = drawer.name;
connect();
requestAnimationFrame(tick);
