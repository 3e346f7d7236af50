// A humanoid avatar driven with the same T-pose-relative rotations the VMC stream carries.
//
// The default avatar is the CC0 robot (RobotExpressive.glb, served at /avatar.glb). It is a plain glTF whose
// rest pose is not a T-pose, so at load it is put into one (each humanoid bone aimed along its T-pose
// direction), then handed to @pixiv/three-vrm's VRMHumanoid, whose normalized bones take rotations relative
// to that T-pose with world-aligned frames: exactly what groovecast computes (W_j C_j, with C_j from hello).
import { Box3, Group, Quaternion, Vector3 } from "three";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";
import { clone as cloneSkinned } from "three/examples/jsm/utils/SkeletonUtils.js";
import { VRMHumanBoneParentMap, VRMHumanoid } from "@pixiv/three-vrm";

// VRM humanoid bone -> node name in RobotExpressive.glb. "Body" is the hips: the legs hang from it.
// The robot has no hand or finger bones (its palms hang from the forearms) and no toes.
const ROBOT_BONES = {
  hips: "Body", spine: "Abdomen", chest: "Torso_1", neck: "Neck", head: "Head",
  leftShoulder: "ShoulderL", leftUpperArm: "UpperArmL", leftLowerArm: "LowerArmL",
  rightShoulder: "ShoulderR", rightUpperArm: "UpperArmR", rightLowerArm: "LowerArmR",
  leftUpperLeg: "UpperLegL", leftLowerLeg: "LowerLegL", leftFoot: "FootL",
  rightUpperLeg: "UpperLegR", rightLowerLeg: "LowerLegR", rightFoot: "FootR",
};
// T-pose: bone -> [node it points at, direction] (model space: the avatar faces +Z, its left is +X).
const UP = new Vector3(0, 1, 0), DOWN = new Vector3(0, -1, 0), LEFT = new Vector3(1, 0, 0), RIGHT = new Vector3(-1, 0, 0);
const ROBOT_TPOSE = [
  ["Abdomen", "Torso_1", UP], ["Torso_1", "Neck", UP], ["Neck", "Head", UP],
  ["ShoulderL", "UpperArmL", LEFT], ["UpperArmL", "LowerArmL", LEFT], ["LowerArmL", "Palm2L", LEFT],
  ["ShoulderR", "UpperArmR", RIGHT], ["UpperArmR", "LowerArmR", RIGHT], ["LowerArmR", "Palm2R", RIGHT],
  ["UpperLegL", "LowerLegL", DOWN], ["LowerLegL", "FootL", DOWN],
  ["UpperLegR", "LowerLegR", DOWN], ["LowerLegR", "FootR", DOWN],
];
// Bones whose direction the page reports for tests: VRM bone -> [avatar node it points at, pose bone pair].
export const CHECKED_BONES = {
  leftUpperArm: ["LowerArmL", "LeftUpperArm", "LeftLowerArm"],
  leftLowerArm: ["Palm2L", "LeftLowerArm", "LeftHand"],
  rightUpperArm: ["LowerArmR", "RightUpperArm", "RightLowerArm"],
  rightLowerArm: ["Palm2R", "RightLowerArm", "RightHand"],
  leftUpperLeg: ["LowerLegL", "LeftUpperLeg", "LeftLowerLeg"],
  leftLowerLeg: ["FootL", "LeftLowerLeg", "LeftFoot"],
  rightUpperLeg: ["LowerLegR", "RightUpperLeg", "RightLowerLeg"],
  rightLowerLeg: ["FootR", "RightLowerLeg", "RightFoot"],
  spine: ["Torso_1", "Spine", "Chest"],
  neck: ["Head", "Neck", "Head"],
};

function aim(bone, target, dir) {
  bone.updateWorldMatrix(true, true);
  const a = bone.getWorldPosition(new Vector3());
  const b = target.getWorldPosition(new Vector3());
  const delta = new Quaternion().setFromUnitVectors(b.sub(a).normalize(), dir); // world-space turn
  const world = bone.getWorldQuaternion(new Quaternion());
  const parentInv = bone.parent.getWorldQuaternion(new Quaternion()).invert();
  bone.quaternion.copy(parentInv.multiply(delta).multiply(world));
  bone.updateWorldMatrix(false, true);
}

// The robot's head is stored turned half a turn from its body (its face, the black goggles "Head_4", looks
// towards -Z while its toes point to +Z; its own animations turn it round). Turn the head about the vertical so
// the face looks the way the body faces (+Z): otherwise a dancer facing the audience shows it the back of its head.
function faceForward(head, face) {
  head.updateWorldMatrix(true, true);
  const d = new Box3().setFromObject(face).getCenter(new Vector3()).sub(head.getWorldPosition(new Vector3()));
  d.y = 0;
  if (d.lengthSq() < 1e-12) return;
  const turn = new Quaternion().setFromUnitVectors(d.normalize(), new Vector3(0, 0, 1)); // world-space turn
  const world = head.getWorldQuaternion(new Quaternion());
  const parentInv = head.parent.getWorldQuaternion(new Quaternion()).invert();
  head.quaternion.copy(parentInv.multiply(turn).multiply(world));
  head.updateWorldMatrix(false, true);
}

/** Load the robot once: returns its parsed glTF (cloned per performer by makeAvatar). */
export async function loadRobot(url) {
  const gltf = await new GLTFLoader().loadAsync(url);
  return gltf.scene;
}

/** One avatar (a Group in metres) for one performer, T-posed and wrapped in a VRMHumanoid. */
export function makeAvatar(template, { tpose = true } = {}) {
  const scene = cloneSkinned(template); // rebinds the skinned hands to the clone's own bones
  const byName = {};
  scene.traverse((o) => { if (o.name) byName[o.name] ??= o; });
  // the feet hang from the armature root (a Blender IK rig); make them follow the shins
  byName.LowerLegL.attach(byName.FootL);
  byName.LowerLegR.attach(byName.FootR);
  if (tpose) {
    for (const [bone, target, dir] of ROBOT_TPOSE) aim(byName[bone], byName[target], dir);
    if (byName.Head_4) faceForward(byName.Head, byName.Head_4);
  }
  scene.updateMatrixWorld(true);
  const humanBones = {};
  for (const [vrmName, node] of Object.entries(ROBOT_BONES)) humanBones[vrmName] = { node: byName[node] };
  const humanoid = new VRMHumanoid(humanBones);
  const group = new Group();
  group.add(scene, humanoid.normalizedHumanBonesRoot);
  const p = (n) => byName[n].getWorldPosition(new Vector3());
  const legLength = p("UpperLegL").distanceTo(p("LowerLegL")) + p("LowerLegL").distanceTo(p("FootL"));
  const hipsRest = humanoid.getNormalizedBoneNode("hips").position.clone();
  const height = new Box3().setFromObject(scene).getSize(new Vector3()).y;
  return { group, humanoid, byName, legLength, hipsRest, height, nodeOf: ROBOT_BONES };
}

// ------------------------------------------------------------------------------------- pose -> avatar

const _q = new Quaternion();

/** World rotations W_j C_j (T-pose relative) of every joint, as three.js quaternions. */
export function tposeWorld(rotations, sk) {
  const out = new Array(rotations.length);
  for (let j = 0; j < rotations.length; j++) {
    const [w, x, y, z] = rotations[j];
    const local = new Quaternion(x, y, z, w);
    out[j] = sk.parents[j] < 0 ? local : out[sk.parents[j]].clone().multiply(local);
  }
  // out[j] is W_j (rest-relative); times C_j gives the T-pose-relative world rotation
  return out.map((wq, j) => {
    const [w, x, y, z] = sk.tpose[j];
    return wq.clone().multiply(_q.set(x, y, z, w));
  });
}

function vrmName(unityName) {
  return unityName[0].toLowerCase() + unityName.slice(1);
}

/** Drive one avatar with one pose message; ``sk`` is the hello skeleton (joints, parents, unity_bones, tpose). */
export function poseAvatar(av, msg, sk) {
  const g = tposeWorld(msg.rotations, sk);
  const jointOf = {};
  sk.joints.forEach((name, j) => {
    const u = sk.unity_bones[name];
    if (u) jointOf[vrmName(u)] = j;
  });
  const present = av.humanoid.humanBones;
  const worldOf = {};
  const parentOf = (b) => {
    let p = VRMHumanBoneParentMap[b];
    while (p && !present[p]) p = VRMHumanBoneParentMap[p];
    return p;
  };
  // parents come before children in VRMHumanBoneParentMap order of the bones we drive
  const order = Object.keys(present).sort((a, b) => depth(a) - depth(b));
  for (const b of order) {
    const p = parentOf(b);
    const gw = jointOf[b] !== undefined ? g[jointOf[b]] : p ? worldOf[p] : new Quaternion();
    worldOf[b] = gw;
    const local = p ? worldOf[p].clone().invert().multiply(gw) : gw.clone();
    av.humanoid.getNormalizedBoneNode(b).quaternion.copy(local);
  }
  // hips height in the avatar's own units: the dancer's hips height times (avatar legs / dancer legs), so the
  // avatar's feet stay on the floor whatever its proportions
  const hips = av.humanoid.getNormalizedBoneNode("hips");
  hips.position.set(av.hipsRest.x, (msg.positions[0][1] * av.legLength) / dancerLegLength(msg, sk), av.hipsRest.z);
  av.humanoid.update();
}

function depth(b) {
  let d = 0;
  for (let p = VRMHumanBoneParentMap[b]; p; p = VRMHumanBoneParentMap[p]) d++;
  return d;
}

/** The dancer's leg length (hip to knee to ankle) from a pose's joint positions, in metres. */
export function dancerLegLength(msg, sk) {
  const idx = {};
  sk.joints.forEach((name, j) => { if (sk.unity_bones[name]) idx[sk.unity_bones[name]] = j; });
  const d = (a, b) => Math.hypot(...[0, 1, 2].map((k) => msg.positions[idx[a]][k] - msg.positions[idx[b]][k]));
  return d("LeftUpperLeg", "LeftLowerLeg") + d("LeftLowerLeg", "LeftFoot");
}
