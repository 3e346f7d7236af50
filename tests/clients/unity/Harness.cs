// Runs GroovecastVmcReceiver (compiled with Mono against UnityEngineStubs.cs) on one VMC bundle and prints
// where each bone of a humanoid rig ends up. The rig's bones have arbitrary local axes, the Avatar stores
// its T-pose (HumanDescription.skeleton), and the rig stands in some other pose when Start() runs.
//   mono harness.exe BUNDLE_FILE...   ->   per file: "frame FILE", then "BoneName px py pz" (world, Unity space)
using System;
using System.Collections.Generic;
using System.IO;
using System.Reflection;
using UnityEngine;

public static class Harness
{
    // bone -> (parent, T-pose offset from the parent in world axes, metres; Unity space, the avatar's left on -X)
    class RigBone { public HumanBodyBones bone; public HumanBodyBones? parent; public Vector3 offset; }
    static readonly List<RigBone> Rig = new List<RigBone>();

    static void Add(HumanBodyBones b, HumanBodyBones? p, float x, float y, float z) =>
        Rig.Add(new RigBone { bone = b, parent = p, offset = new Vector3(x, y, z) });

    static Quaternion RandomRotation(System.Random r)
    {
        float x = (float)(r.NextDouble() * 2 - 1), y = (float)(r.NextDouble() * 2 - 1), z = (float)(r.NextDouble() * 2 - 1), w = (float)(r.NextDouble() * 2 - 1);
        float n = (float)Math.Sqrt(x * x + y * y + z * z + w * w);
        return new Quaternion(x / n, y / n, z / n, w / n);
    }

    public static int Main(string[] args)
    {
        Add(HumanBodyBones.Hips, null, 0, 1.0f, 0);
        Add(HumanBodyBones.Spine, HumanBodyBones.Hips, 0, 0.1f, 0);
        Add(HumanBodyBones.Chest, HumanBodyBones.Spine, 0, 0.12f, 0);
        Add(HumanBodyBones.UpperChest, HumanBodyBones.Chest, 0, 0.12f, 0);
        Add(HumanBodyBones.Neck, HumanBodyBones.UpperChest, 0, 0.15f, 0);
        Add(HumanBodyBones.Head, HumanBodyBones.Neck, 0, 0.1f, 0);
        foreach (var side in new[] { "Left", "Right" })
        {
            float x = side == "Left" ? -1f : 1f;
            Func<string, HumanBodyBones> B = n => (HumanBodyBones)Enum.Parse(typeof(HumanBodyBones), side + n);
            Add(B("Shoulder"), HumanBodyBones.UpperChest, 0.04f * x, 0.1f, 0);
            Add(B("UpperArm"), B("Shoulder"), 0.1f * x, 0, 0);
            Add(B("LowerArm"), B("UpperArm"), 0.28f * x, 0, 0);
            Add(B("Hand"), B("LowerArm"), 0.25f * x, 0, 0);
            Add(B("MiddleProximal"), B("Hand"), 0.09f * x, 0, 0);
            Add(B("UpperLeg"), HumanBodyBones.Hips, 0.09f * x, -0.05f, 0);
            Add(B("LowerLeg"), B("UpperLeg"), 0, -0.42f, 0);
            Add(B("Foot"), B("LowerLeg"), 0, -0.4f, 0);
            Add(B("Toes"), B("Foot"), 0, -0.06f, 0.12f);
        }

        var rng = new System.Random(1);
        var go = new GameObject { name = "avatar" };
        var animator = new Animator { name = "avatar", gameObject = go };
        animator.transform.name = "avatar";
        go.components.Add(animator);
        var tf = new Dictionary<HumanBodyBones, Transform>();
        var tposeWorld = new Dictionary<HumanBodyBones, Quaternion>();
        var skeleton = new List<SkeletonBone>();
        foreach (var rb in Rig)
        {
            var bone = rb.bone; var parent = rb.parent; var offset = rb.offset;
            var t = new Transform { name = "bone_" + bone, parent = parent.HasValue ? tf[parent.Value] : animator.transform };
            var rest = RandomRotation(rng);  // arbitrary bone axes, as real rigs have
            var parentRest = parent.HasValue ? tposeWorld[parent.Value] : Quaternion.identity;
            t.localRotation = Quaternion.Inverse(parentRest) * rest;
            t.localPosition = Quaternion.Inverse(parentRest) * offset;
            tf[bone] = t;
            tposeWorld[bone] = rest;
            animator.bones[bone] = t;
            skeleton.Add(new SkeletonBone { name = t.name, rotation = t.localRotation, position = t.localPosition });
        }
        animator.avatar = new Avatar { humanDescription = new HumanDescription { skeleton = skeleton.ToArray() } };
        // not a T-pose when Play starts: every bone turned somewhere else
        foreach (var t in tf.Values) t.localRotation = t.localRotation * RandomRotation(rng);

        var receiver = new GroovecastVmcReceiver { gameObject = go, animator = animator, port = 0 };
        receiver.transform = animator.transform;
        var flags = BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public;
        typeof(GroovecastVmcReceiver).GetMethod("Start", flags).Invoke(receiver, null);
        foreach (var file in args)
        {
            var data = File.ReadAllBytes(file);
            typeof(GroovecastVmcReceiver).GetMethod("ParsePacket", flags).Invoke(receiver, new object[] { data, 0, data.Length });
            typeof(GroovecastVmcReceiver).GetMethod("LateUpdate", flags).Invoke(receiver, null);
            Console.WriteLine($"frame {file}");
            foreach (var rb in Rig)
            {
                var p = tf[rb.bone].position;
                Console.WriteLine($"{rb.bone} {p.x:R} {p.y:R} {p.z:R}");
            }
        }
        typeof(GroovecastVmcReceiver).GetMethod("OnDestroy", flags).Invoke(receiver, null);
        foreach (var m in UnityEngine.Debug.Messages) Console.Error.WriteLine(m);
        Console.WriteLine($"bundles {receiver.bundles}");
        return 0;
    }
}
