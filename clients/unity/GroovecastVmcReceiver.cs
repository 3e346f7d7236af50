// groovecast -> Unity: receives the VMC protocol (OSC over UDP) that `groovecast replay --osc` and the
// engine send, and drives a Humanoid avatar. Not run in Unity by groovecast's CI (no Unity there); the tests
// compile and run it with Mono against UnityEngine stand-ins (tests/clients/test_unity_receiver.py).
//
// What arrives (one OSC bundle per frame, Unity space: left-handed, Y up, metres):
//   /VMC/Ext/OK i i i i, /VMC/Ext/T f,
//   /groovecast/stamp i i s s (performer, frame, sample, src ns as decimal strings; only with --vmc-stamp),
//   /VMC/Ext/Root/Pos s"root" px py pz qx qy qz qw,
//   /VMC/Ext/Bone/Pos s<HumanBodyBones> px py pz qx qy qz qw   (local to the nearest sent ancestor bone)
//
// Bone rotations are relative to a T-pose whose bone frames are aligned with the world axes (VRM's
// "normalized" convention). For any Humanoid rig this script takes each bone's world rotation in the
// avatar's T-pose and applies  world = root * (product of received locals) * restWorld, so rigs whose
// bones have arbitrary local axes work too. The T-pose comes from the Avatar asset (the skeleton pose
// Unity's Humanoid import stores, HumanDescription.skeleton), so the avatar does NOT have to stand in a
// T-pose when Play starts; only an avatar without that data falls back to its pose at Start().
using System;
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using UnityEngine;

public class GroovecastVmcReceiver : MonoBehaviour
{
    [Tooltip("UDP port to listen on (VMC default 39539)")]
    public int port = 39539;
    [Tooltip("The Humanoid avatar to drive")]
    public Animator animator;
    [Tooltip("Move the avatar with /VMC/Ext/Root/Pos")]
    public bool applyRootPosition = true;
    [Tooltip("Apply the hips' local position (the vertical bob) from /VMC/Ext/Bone/Pos Hips")]
    public bool applyHipsPosition = true;

    [Header("Read-only status")]
    public int lastFrameIndex = -1;
    public long lastSampleIndex = -1;
    public int bundles;

    struct Bone { public Vector3 pos; public Quaternion rot; }

    readonly object _lock = new object();
    // Bones in the order they arrived: groovecast sends parents before children.
    List<KeyValuePair<HumanBodyBones, Bone>> _incoming = new List<KeyValuePair<HumanBodyBones, Bone>>();
    List<KeyValuePair<HumanBodyBones, Bone>> _latest;
    Vector3 _rootPos;
    int _frame = -1;
    long _sample = -1;
    UdpClient _udp;
    Thread _thread;
    volatile bool _running;

    readonly Dictionary<HumanBodyBones, Quaternion> _restWorld = new Dictionary<HumanBodyBones, Quaternion>();
    readonly Dictionary<string, HumanBodyBones> _byName = new Dictionary<string, HumanBodyBones>();
    Vector3 _rootStart;

    void Start()
    {
        if (animator == null) animator = GetComponent<Animator>();
        if (animator == null || !animator.isHuman) { Debug.LogError("GroovecastVmcReceiver needs a Humanoid Animator"); enabled = false; return; }
        var tpose = new Dictionary<string, Quaternion>();  // transform name -> local rotation in the T-pose
        var avatarAsset = animator.avatar;
        if (avatarAsset != null)
            foreach (var sb in avatarAsset.humanDescription.skeleton) tpose[sb.name] = sb.rotation;
        if (tpose.Count == 0)
            Debug.LogWarning("groovecast: this Avatar stores no skeleton pose; using the pose at Start (stand it in T-pose)");
        foreach (HumanBodyBones b in Enum.GetValues(typeof(HumanBodyBones)))
        {
            if (b == HumanBodyBones.LastBone) continue;
            _byName[b.ToString()] = b;
            var t = animator.GetBoneTransform(b);
            if (t == null) continue;
            _restWorld[b] = tpose.Count > 0 ? TPoseRotation(t, tpose)
                                            : Quaternion.Inverse(animator.transform.rotation) * t.rotation;
        }
        // Stand the avatar in its T-pose, so bones the stream does not drive (e.g. UpperChest, which the CMU
        // skeleton lacks) sit in their T-pose orientation rather than wherever they were at Start.
        if (tpose.Count > 0)
            foreach (var b in _restWorld.Keys)
                for (var t = animator.GetBoneTransform(b); t != null && t != animator.transform; t = t.parent)
                    if (tpose.TryGetValue(t.name, out var local)) t.localRotation = local;
        _rootStart = animator.transform.localPosition;
        _udp = new UdpClient(new IPEndPoint(IPAddress.Any, port));
        _running = true;
        _thread = new Thread(ReceiveLoop) { IsBackground = true, Name = "groovecast VMC" };
        _thread.Start();
    }

    // The bone's rotation relative to the avatar root in the Avatar's stored T-pose: the product of the
    // stored local rotations from just below the root down to the bone (a transform the Avatar does not
    // list keeps its current local rotation).
    Quaternion TPoseRotation(Transform bone, Dictionary<string, Quaternion> tpose)
    {
        var q = Quaternion.identity;
        for (var t = bone; t != null && t != animator.transform; t = t.parent)
            q = (tpose.TryGetValue(t.name, out var local) ? local : t.localRotation) * q;
        return q;
    }

    void OnDestroy()
    {
        _running = false;
        _udp?.Close();  // unblocks Receive
        _thread?.Join(500);
    }

    // ------------------------------------------------------------------------------------------ OSC
    void ReceiveLoop()
    {
        var any = new IPEndPoint(IPAddress.Any, 0);
        while (_running)
        {
            byte[] data;
            try { data = _udp.Receive(ref any); }
            catch (SocketException) { continue; }
            catch (ObjectDisposedException) { return; }
            try { ParsePacket(data, 0, data.Length); }
            catch (Exception e) { Debug.LogWarning("groovecast: bad OSC packet: " + e.Message); }
        }
    }

    void ParsePacket(byte[] d, int start, int len)
    {
        if (len >= 16 && Encoding.ASCII.GetString(d, start, 7) == "#bundle")
        {
            int p = start + 16, end = start + len;
            while (p + 4 <= end)
            {
                int size = ReadInt(d, p); p += 4;
                ParsePacket(d, p, size);
                p += size;
            }
            lock (_lock) { _latest = _incoming; _incoming = new List<KeyValuePair<HumanBodyBones, Bone>>(); bundles++; }
            return;
        }
        int q = start;
        string address = ReadString(d, ref q);
        string tags = ReadString(d, ref q);
        if (address == "/VMC/Ext/Bone/Pos" && tags == ",sfffffff")
        {
            string name = ReadString(d, ref q);
            if (!_byName.TryGetValue(name, out var bone)) return;
            var pos = new Vector3(ReadFloat(d, q), ReadFloat(d, q + 4), ReadFloat(d, q + 8));
            var rot = new Quaternion(ReadFloat(d, q + 12), ReadFloat(d, q + 16), ReadFloat(d, q + 20), ReadFloat(d, q + 24));
            lock (_lock) _incoming.Add(new KeyValuePair<HumanBodyBones, Bone>(bone, new Bone { pos = pos, rot = rot }));
        }
        else if (address == "/VMC/Ext/Root/Pos" && tags.StartsWith(",sfffffff"))
        {
            ReadString(d, ref q);
            var pos = new Vector3(ReadFloat(d, q), ReadFloat(d, q + 4), ReadFloat(d, q + 8));
            lock (_lock) _rootPos = pos;
        }
        else if (address == "/groovecast/stamp" && tags == ",iiss")  // only with groovecast --vmc-stamp
        {
            int frame = ReadInt(d, q + 4);
            q += 8;
            long.TryParse(ReadString(d, ref q), out long sample);
            lock (_lock) { _frame = frame; _sample = sample; }
        }
    }

    static int ReadInt(byte[] d, int p) => (d[p] << 24) | (d[p + 1] << 16) | (d[p + 2] << 8) | d[p + 3];
    static float ReadFloat(byte[] d, int p) => BitConverter.Int32BitsToSingle(ReadInt(d, p));  // OSC is big-endian

    static string ReadString(byte[] d, ref int p)
    {
        int end = p;
        while (d[end] != 0) end++;
        string s = Encoding.UTF8.GetString(d, p, end - p);
        p = (end + 4) & ~3;  // skip the NUL and pad to 4 bytes
        return s;
    }

    // ---------------------------------------------------------------------------------------- apply
    void LateUpdate()
    {
        List<KeyValuePair<HumanBodyBones, Bone>> pose;
        Vector3 root;
        lock (_lock) { pose = _latest; root = _rootPos; lastFrameIndex = _frame; lastSampleIndex = _sample; }
        if (pose == null) return;
        var avatar = animator.transform;
        if (applyRootPosition) avatar.localPosition = _rootStart + root;
        // Received locals compose along the humanoid hierarchy; bones we did not receive are skipped.
        var world = new Dictionary<HumanBodyBones, Quaternion>();
        // (Enum order is not parent-first: UpperChest comes last. groovecast's message order is.)
        foreach (var kv in pose)
        {
            var b = kv.Key;
            var bone = kv.Value;
            Quaternion parentWorld = Quaternion.identity;
            for (int p = HumanTrait.GetParentBone((int)b); p >= 0; p = HumanTrait.GetParentBone(p))
                if (world.TryGetValue((HumanBodyBones)p, out var found)) { parentWorld = found; break; }
            world[b] = parentWorld * bone.rot;
            var t = animator.GetBoneTransform(b);
            if (t == null || !_restWorld.TryGetValue(b, out var rest)) continue;
            t.rotation = avatar.rotation * world[b] * rest;
            if (b == HumanBodyBones.Hips && applyHipsPosition)
                t.position = avatar.TransformPoint(bone.pos);
        }
    }
}
