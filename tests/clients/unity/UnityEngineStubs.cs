// A minimal stand-in for the parts of UnityEngine that GroovecastVmcReceiver.cs uses, so the receiver can be
// compiled and run with Mono in groovecast's tests. Signatures follow Unity's scripting reference; the math
// (Quaternion, Vector3, Transform hierarchy) is implemented for real so the receiver's composition can be
// checked. This is NOT Unity: lifecycle methods are called by the test harness.
using System;
using System.Collections.Generic;

namespace UnityEngine
{
    public class TooltipAttribute : Attribute { public TooltipAttribute(string t) { } }
    public class HeaderAttribute : Attribute { public HeaderAttribute(string t) { } }

    public static class Debug
    {
        public static List<string> Messages = new List<string>();
        public static void Log(object m) { Messages.Add("log: " + m); }
        public static void LogWarning(object m) { Messages.Add("warning: " + m); }
        public static void LogError(object m) { Messages.Add("error: " + m); }
    }

    public struct Vector3
    {
        public float x, y, z;
        public Vector3(float x, float y, float z) { this.x = x; this.y = y; this.z = z; }
        public static Vector3 zero => new Vector3(0, 0, 0);
        public static Vector3 operator +(Vector3 a, Vector3 b) => new Vector3(a.x + b.x, a.y + b.y, a.z + b.z);
        public static Vector3 operator -(Vector3 a, Vector3 b) => new Vector3(a.x - b.x, a.y - b.y, a.z - b.z);
        public override string ToString() => $"({x:F4}, {y:F4}, {z:F4})";
    }

    public struct Quaternion
    {
        public float x, y, z, w;
        public Quaternion(float x, float y, float z, float w) { this.x = x; this.y = y; this.z = z; this.w = w; }
        public static Quaternion identity => new Quaternion(0, 0, 0, 1);
        public static Quaternion operator *(Quaternion a, Quaternion b) => new Quaternion(
            a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y,
            a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
            a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w,
            a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z);
        public static Vector3 operator *(Quaternion q, Vector3 v)
        {
            var p = q * new Quaternion(v.x, v.y, v.z, 0) * Inverse(q);
            return new Vector3(p.x, p.y, p.z);
        }
        public static Quaternion Inverse(Quaternion q) => new Quaternion(-q.x, -q.y, -q.z, q.w);
        public override string ToString() => $"({x:F5}, {y:F5}, {z:F5}, {w:F5})";
    }

    public class Object { public string name = ""; }

    public class Transform : Object
    {
        public Transform parent;
        public Vector3 localPosition = Vector3.zero;
        public Quaternion localRotation = Quaternion.identity;
        public Quaternion rotation
        {
            get => parent == null ? localRotation : parent.rotation * localRotation;
            set => localRotation = parent == null ? value : Quaternion.Inverse(parent.rotation) * value;
        }
        public Vector3 position
        {
            get => parent == null ? localPosition : parent.TransformPoint(localPosition);
            set => localPosition = parent == null ? value : Quaternion.Inverse(parent.rotation) * (value - parent.position);
        }
        public Vector3 TransformPoint(Vector3 p) => position + rotation * p;  // no scale in these tests
    }

    public class Component : Object
    {
        public Transform transform = new Transform();
        public GameObject gameObject;
        public T GetComponent<T>() where T : class => gameObject?.Get<T>();
    }

    public class GameObject : Object
    {
        public List<object> components = new List<object>();
        public T Get<T>() where T : class { foreach (var c in components) if (c is T t) return t; return null; }
    }

    public class Behaviour : Component { public bool enabled = true; }
    public class MonoBehaviour : Behaviour { }

    public enum HumanBodyBones
    {
        Hips = 0, LeftUpperLeg = 1, RightUpperLeg = 2, LeftLowerLeg = 3, RightLowerLeg = 4, LeftFoot = 5,
        RightFoot = 6, Spine = 7, Chest = 8, Neck = 9, Head = 10, LeftShoulder = 11, RightShoulder = 12,
        LeftUpperArm = 13, RightUpperArm = 14, LeftLowerArm = 15, RightLowerArm = 16, LeftHand = 17,
        RightHand = 18, LeftToes = 19, RightToes = 20, LeftEye = 21, RightEye = 22, Jaw = 23,
        LeftThumbProximal = 24, LeftThumbIntermediate = 25, LeftThumbDistal = 26, LeftIndexProximal = 27,
        LeftIndexIntermediate = 28, LeftIndexDistal = 29, LeftMiddleProximal = 30, LeftMiddleIntermediate = 31,
        LeftMiddleDistal = 32, LeftRingProximal = 33, LeftRingIntermediate = 34, LeftRingDistal = 35,
        LeftLittleProximal = 36, LeftLittleIntermediate = 37, LeftLittleDistal = 38, RightThumbProximal = 39,
        RightThumbIntermediate = 40, RightThumbDistal = 41, RightIndexProximal = 42, RightIndexIntermediate = 43,
        RightIndexDistal = 44, RightMiddleProximal = 45, RightMiddleIntermediate = 46, RightMiddleDistal = 47,
        RightRingProximal = 48, RightRingIntermediate = 49, RightRingDistal = 50, RightLittleProximal = 51,
        RightLittleIntermediate = 52, RightLittleDistal = 53, UpperChest = 54, LastBone = 55,
    }

    public static class HumanTrait
    {
        // Unity's humanoid parent table for the bones the tests use (-1: none).
        static readonly Dictionary<int, int> Parent = new Dictionary<int, int>
        {
            { 0, -1 }, { 1, 0 }, { 2, 0 }, { 3, 1 }, { 4, 2 }, { 5, 3 }, { 6, 4 }, { 7, 0 }, { 8, 7 }, { 54, 8 },
            { 9, 54 }, { 10, 9 }, { 11, 54 }, { 12, 54 }, { 13, 11 }, { 14, 12 }, { 15, 13 }, { 16, 14 },
            { 17, 15 }, { 18, 16 }, { 19, 5 }, { 20, 6 }, { 21, 10 }, { 22, 10 }, { 23, 10 },
        };
        public static int GetParentBone(int i) => Parent.TryGetValue(i, out var p) ? p : (i >= 24 && i <= 38 ? 17 : 18);
    }

    public struct SkeletonBone { public string name; public Vector3 position; public Quaternion rotation; public Vector3 scale; }
    public struct HumanDescription { public SkeletonBone[] skeleton; }
    public class Avatar : Object { public HumanDescription humanDescription; }

    public class Animator : Behaviour
    {
        public bool isHuman = true;
        public Avatar avatar;
        public Dictionary<HumanBodyBones, Transform> bones = new Dictionary<HumanBodyBones, Transform>();
        public Transform GetBoneTransform(HumanBodyBones b) => bones.TryGetValue(b, out var t) ? t : null;
    }
}
