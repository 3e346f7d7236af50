// groovecast viewer: every performer as a humanoid avatar (or a stick figure), the beat, the BPM and the
// measured latency. Served by the engine itself (same origin), so it connects back to ws://<this host>/ws.
//
// URL parameters: ?view=avatar|stick (default avatar), ?renderer=2d (2D canvas stick figures),
// ?performer=N (only that performer), ?token=... (servers started with --token).
import {
  AmbientLight,
  Box3,
  BufferAttribute,
  BufferGeometry,
  CircleGeometry,
  Color,
  DirectionalLight,
  GridHelper,
  HemisphereLight,
  LineBasicMaterial,
  LineSegments,
  Mesh,
  MeshBasicMaterial,
  PerspectiveCamera,
  Points,
  PointsMaterial,
  Scene,
  Vector3,
  WebGLRenderer,
} from "three";
import { CHECKED_BONES, loadRobot, makeAvatar, poseAvatar } from "./avatar.js";

const AVATAR_HEIGHT_M = 1.7;

const params = new URLSearchParams(location.search);
const canvas = document.getElementById("view");
const hud = {
  status: document.getElementById("status"),
  bpm: document.getElementById("bpm"),
  bigBpm: document.getElementById("bigbpm"),
  beat: document.getElementById("beat"),
  frame: document.getElementById("frame"),
  fps: document.getElementById("fps"),
  latency: document.getElementById("latency"),
  delivery: document.getElementById("delivery"),
  renderer: document.getElementById("renderer"),
  performers: document.getElementById("performers"),
};

// State the page exposes for tests and curious users (window.groovecast).
const state = {
  connected: false,
  frames: 0,
  lastFrameIndex: -1,
  renderer: "",
  view: "",
  skeleton: "",
  performers: [],
  avatarReady: false,
  latencyMs: null, // end to end: source stamp (src_monotonic_ns) -> this page, p50 of the last 120 frames
  deliveryMs: null, // server publish (server_ns) -> this page
  clockOffsetMs: null,
  clockRttMs: null,
  drawnFrames: 0,
  freeze: false, // tests: keep drawing the current poses, ignore new ones
  hideAvatars: false, // tests: draw the scene without the avatars
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

// ----------------------------------------------------------------------------------- layout
// The engine stages its dancers for an audience on +Z (this camera's side): each solo dancer faces the front and
// stays on a stage around the origin, and a couple is placed and staged as a pair in one world frame. So one unit (a
// solo dancer or a couple: the hello's "groups") is drawn exactly where the engine put it, facing where it faces.
// Several units would all share the one stage (independent dancers are each staged around the origin), so they
// stand side by side 1.2 m apart instead: each unit keeps its steps and its members' placement, not its long-term
// travel (its anchor follows the unit's mean root with a 3 s time constant), so they never walk into each other.
const SPACING = 1.2;
const ANCHOR_TAU_S = 3.0;
const anchors = {};
let groups = []; // from the hello: lists of performers that share one world frame (a couple)
const IDENTITY = { yaw: 0, toWorld: (p) => p };

function unitOf(performer) {
  const g = groups.find((members) => members.includes(performer));
  return g ? g.join(",") : String(performer);
}

// performer -> { yaw, toWorld } for every performer drawn this tick
function layoutAll(order, dt) {
  const units = [];
  for (const p of order) {
    const u = unitOf(p);
    if (!units.includes(u)) units.push(u);
  }
  const out = {};
  if (units.length <= 1) {
    for (const p of order) out[p] = IDENTITY;
    return out;
  }
  units.forEach((u, i) => {
    const members = order.filter((p) => unitOf(p) === u);
    const cx = members.reduce((a, p) => a + latest[p].root[0], 0) / members.length;
    const cz = members.reduce((a, p) => a + latest[p].root[2], 0) / members.length;
    const a = anchors[u] ?? (anchors[u] = [cx, cz]);
    if (!state.freeze) {
      const k = 1 - Math.exp(-Math.min(dt, 0.5) / ANCHOR_TAU_S);
      a[0] += (cx - a[0]) * k;
      a[1] += (cz - a[1]) * k;
    }
    const slot = (i - (units.length - 1) / 2) * SPACING * members.length;
    const [ax, az] = a;
    const place = { yaw: 0, toWorld: (p) => [slot + p[0] - ax, p[1], p[2] - az] };
    for (const p of members) out[p] = place;
  });
  return out;
}

// ----------------------------------------------------------------------------------- rendering
let skeletons = {};
let drawer = null;

function makeScene() {
  const renderer = new WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  const scene = new Scene();
  scene.background = new Color(0x15151f);
  const camera = new PerspectiveCamera(40, 1, 0.05, 100);
  const grid = new GridHelper(12, 24, 0x5a5a80, 0x34344a);
  scene.add(grid);
  const target = new Vector3(0, 0.9, 0);
  const eye = new Vector3(0, 1.3, 4);
  function resize() {
    const w = canvas.clientWidth, h = canvas.clientHeight;
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
  }
  // Frame every body: the box of all joints, seen from the front and a little above, with a margin.
  function frame(points, snap) {
    if (!points.length) return;
    const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    for (const p of points) for (let k = 0; k < 3; k++) { lo[k] = Math.min(lo[k], p[k]); hi[k] = Math.max(hi[k], p[k]); }
    lo[1] = Math.min(lo[1], 0);
    state.frameBox = { lo, hi }; // tests and bench.watch: what the camera frames
    const center = new Vector3((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, (lo[2] + hi[2]) / 2);
    const halfH = (hi[1] - lo[1]) / 2 + 0.15, halfW = (hi[0] - lo[0]) / 2 + 0.35;
    const t = Math.tan((camera.fov * Math.PI) / 360);
    const dist = Math.max(halfH / t, halfW / (t * camera.aspect)) + (hi[2] - lo[2]) / 2 + 0.3;
    const wantEye = center.clone().add(new Vector3(0, 0.1, 1).normalize().multiplyScalar(dist));
    if (state.freeze && !snap) return; // tests: the camera holds still with the poses
    const k = snap ? 1 : 0.08; // ease, so the camera does not shake with every step
    target.lerp(center, k);
    eye.lerp(wantEye, k);
    camera.position.copy(eye);
    camera.lookAt(target);
  }
  return { renderer, scene, camera, grid, resize, frame };
}

function makeStickLayer(scene) {
  const lineGeom = new BufferGeometry();
  const lines = new LineSegments(lineGeom, new LineBasicMaterial({ color: 0x66ddff }));
  const pointGeom = new BufferGeometry();
  const points = new Points(pointGeom, new PointsMaterial({ color: 0xffcc44, size: 0.04 }));
  scene.add(lines, points);
  let size = -1;
  return {
    draw(bodies, beatGlow) {
      const nLines = bodies.reduce((a, b) => a + b.parents.filter((p) => p >= 0).length, 0);
      const nPoints = bodies.reduce((a, b) => a + b.pos.length, 0);
      if (nPoints !== size) {
        size = nPoints;
        lineGeom.setAttribute("position", new BufferAttribute(new Float32Array(nLines * 6), 3));
        pointGeom.setAttribute("position", new BufferAttribute(new Float32Array(nPoints * 3), 3));
      }
      const la = lineGeom.attributes.position.array, pa = pointGeom.attributes.position.array;
      let k = 0, m = 0;
      for (const { pos, parents } of bodies) {
        for (let j = 0; j < pos.length; j++) {
          pa.set(pos[j], m);
          m += 3;
          if (parents[j] >= 0) { la.set(pos[parents[j]], k); la.set(pos[j], k + 3); k += 6; }
        }
      }
      lineGeom.attributes.position.needsUpdate = pointGeom.attributes.position.needsUpdate = true;
      lineGeom.computeBoundingSphere();
      pointGeom.computeBoundingSphere();
      lines.material.color.setHex(beatGlow ? 0xffffff : 0x66ddff);
    },
    set visible(v) { lines.visible = points.visible = v; },
  };
}

function makeWebGL(view) {
  const s = makeScene();
  const stick = makeStickLayer(s.scene);
  const avatars = {};
  const rings = {};
  let robot = null;
  if (view === "avatar") {
    s.scene.add(new HemisphereLight(0xddeeff, 0x303040, 1.6), new AmbientLight(0xffffff, 0.4));
    const sun = new DirectionalLight(0xffffff, 2.2);
    sun.position.set(2, 4, 3);
    s.scene.add(sun);
    loadRobot("/avatar.glb").then((r) => { robot = r; state.avatarReady = true; })
      .catch((e) => { console.warn("avatar failed to load, drawing stick figures:", e); state.avatarError = String(e); });
  }
  function avatarFor(performer) {
    if (!robot) return null;
    if (!avatars[performer]) {
      const av = makeAvatar(robot, { tpose: params.get("debug") !== "raw" });
      s.scene.add(av.group);
      avatars[performer] = av;
      const ring = new Mesh(new CircleGeometry(0.45, 40), new MeshBasicMaterial({ color: 0x332244, transparent: true, opacity: 0.8 }));
      ring.rotation.x = -Math.PI / 2;
      ring.position.y = 0.002;
      s.scene.add(ring);
      rings[performer] = ring;
    }
    return avatars[performer];
  }
  return {
    name: "webgl",
    three: s,
    avatars,
    drawEmpty() {
      stick.visible = false;
      s.resize();
      s.frame([[-0.5, 0, 0], [0.5, 1.8, 0]], true);
      s.renderer.render(s.scene, s.camera);
    },
    draw(bodies, beatGlow, first) {
      s.resize();
      const extra = [];
      const useAvatar = view === "avatar" && robot;
      stick.visible = !useAvatar;
      if (useAvatar) {
        for (const b of bodies) {
          const av = avatarFor(b.performer);
          // as tall as the dancer's body (1.7 m for the shipped model); its limbs keep their own proportions
          av.group.scale.setScalar(AVATAR_HEIGHT_M / av.height);
          const [x, , z] = b.toWorld([b.msg.root[0], 0, b.msg.root[2]]);
          av.group.position.set(x, 0, z);
          av.group.quaternion.setFromAxisAngle(new Vector3(0, 1, 0), b.yaw);
          if (!params.get("debug")) poseAvatar(av, b.msg, b.sk);
          av.group.visible = !state.hideAvatars;
          av.group.updateMatrixWorld(true);
          // the robot's big head rises above the dancer's joints: frame its top too. Not the whole box, whose
          // width comes from the skinned mesh's bind pose (about 2 m for one dancer) and pushed the camera far away.
          const box = new Box3().setFromObject(av.group);
          extra.push([x, box.max.y, z]);
          rings[b.performer].position.set(x, 0.002, z);
          rings[b.performer].material.color.setHex(beatGlow ? 0xff4477 : 0x332244);
        }
      } else {
        stick.draw(bodies, beatGlow);
      }
      s.frame([...bodies.flatMap((b) => b.pos), ...extra], first);
      s.renderer.render(s.scene, s.camera);
    },
  };
}

function make2D() {
  // Fallback when WebGL is unavailable (e.g. headless browsers without a GPU): front orthographic view.
  const ctx = canvas.getContext("2d");
  function background() {
    const w = (canvas.width = canvas.clientWidth), h = (canvas.height = canvas.clientHeight);
    ctx.fillStyle = "#15151f";
    ctx.fillRect(0, 0, w, h);
    ctx.strokeStyle = "#34344a";
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
    draw(bodies, beatGlow) {
      const [w, h] = background();
      const all = bodies.flatMap((b) => b.pos);
      const xs = all.map((p) => p[0]);
      const cx = (Math.min(...xs) + Math.max(...xs)) / 2;
      const scale = Math.min(h / 2.4, w / Math.max(2.4, Math.max(...xs) - Math.min(...xs) + 1));
      const px = (p) => w / 2 + (p[0] - cx) * scale;
      const py = (p) => h - 0.1 * h - p[1] * scale;
      ctx.strokeStyle = beatGlow ? "#ffffff" : "#66ddff";
      ctx.lineWidth = 3;
      ctx.beginPath();
      for (const { pos, parents } of bodies) {
        for (let j = 0; j < pos.length; j++) {
          if (parents[j] < 0) continue;
          ctx.moveTo(px(pos[parents[j]]), py(pos[parents[j]]));
          ctx.lineTo(px(pos[j]), py(pos[j]));
        }
      }
      ctx.stroke();
      ctx.fillStyle = "#ffcc44";
      for (const p of all) ctx.fillRect(px(p) - 2, py(p) - 2, 4, 4);
    },
  };
}

function pickDrawer() {
  const view = params.get("view") === "stick" ? "stick" : "avatar";
  if (params.get("renderer") !== "2d") {
    try {
      const d = makeWebGL(view);
      state.view = view;
      return d;
    } catch (e) {
      console.warn("WebGL unavailable, drawing with a 2D canvas:", e);
    }
  }
  state.view = "stick";
  return make2D();
}

// ----------------------------------------------------------------------------------- socket
const latest = {}; // performer -> newest pose message
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
    if (msg.type === "hello") {
      skeletons = msg.skeletons;
      groups = Array.isArray(msg.groups) ? msg.groups : [];
    }
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
      if (msg.performer === 0 || latest[0] === undefined) {
        frameTimes.push(now);
        if (frameTimes.length > 60) frameTimes.shift();
        if (msg.beat) beatUntil = now + 100;
      }
      if (!state.freeze) latest[msg.performer] = msg;
    } else if (msg.type === "error") console.warn("server:", msg.error);
  };
}

let bodies = [];
let framed = false;
let lastTick = performance.now();
function tick() {
  const now = performance.now();
  const dt = (now - lastTick) / 1000;
  lastTick = now;
  const order = Object.keys(latest).map(Number).sort((a, b) => a - b).filter((p) => skeletons[latest[p].skeleton]);
  if (!order.length && drawer) drawer.drawEmpty();
  if (order.length && drawer) {
    const places = layoutAll(order, dt);
    bodies = order.map((p) => {
      const msg = latest[p];
      const sk = skeletons[msg.skeleton];
      const { yaw, toWorld } = places[p];
      return { performer: p, msg, sk, yaw, toWorld, parents: sk.parents, pos: msg.positions.map(toWorld) };
    });
    drawer.draw(bodies, now < beatUntil, !framed);
    framed = true;
    state.drawnFrames++;
    state.performers = order;
    const lead = latest[order[0]];
    hud.bpm.textContent = lead.bpm > 0 ? lead.bpm.toFixed(1) : "–";
    hud.bigBpm.textContent = lead.bpm > 0 ? lead.bpm.toFixed(0) : "–";
    hud.frame.textContent = String(lead.frame_index);
    hud.performers.textContent = String(order.length);
    hud.beat.classList.toggle("on", now < beatUntil);
    document.body.classList.toggle("beat", now < beatUntil);
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

// ----------------------------------------------------------------------------------- test hooks
// What the browser test checks: where the avatar's bones are drawn (canvas pixels) and which way they
// point (world space), next to the pose the page drew them from (world space, after the layout).
state.inspect = () => {
  if (!drawer || !drawer.three) return null;
  const { camera } = drawer.three;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  const out = {};
  for (const b of bodies) {
    const av = drawer.avatars[b.performer];
    const entry = { pose: {}, yaw: b.yaw };
    b.sk.joints.forEach((name, j) => {
      const u = b.sk.unity_bones[name];
      if (u) entry.pose[u] = b.pos[j];
    });
    if (av) {
      av.group.updateMatrixWorld(true);
      const world = (n) => av.byName[n].getWorldPosition(new Vector3());
      const screen = (v) => { const p = v.clone().project(camera); return [(p.x + 1) / 2 * w, (1 - p.y) / 2 * h]; };
      entry.bones = {};
      for (const [bone, [target, from, to]] of Object.entries(CHECKED_BONES)) {
        const a = world(av.nodeOf[bone]), t = world(target);
        entry.bones[bone] = {
          from, to, start: a.toArray(), end: t.toArray(),
          screenStart: screen(a), screenMid: screen(a.clone().lerp(t, 0.5)), screenEnd: screen(t),
        };
      }
      entry.head = screen(world("Head").lerp(world("Head_end"), 0.4));
      if (av.byName.Head_4) { // where the robot's face (its goggles) looks, horizontally (world space)
        const d = new Box3().setFromObject(av.byName.Head_4).getCenter(new Vector3()).sub(world("Head"));
        entry.face = [d.x, 0, d.z];
      }
    }
    out[b.performer] = entry;
  }
  return out;
};

drawer = pickDrawer();
state.renderer = drawer.name;
hud.renderer.textContent = `${drawer.name} · ${state.view}`;
connect();
requestAnimationFrame(tick);
