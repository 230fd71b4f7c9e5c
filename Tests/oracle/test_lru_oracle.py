"""`per-vcpu-lru:K` against an independent oracle: libCacheSim's LRU (PyPI libcachesim 0.3.5).

DESIGN §2-3: per (VM, L1 vCPU), the policy sees only *switches*: a load/enter of g on v is a
switch when v's current control block is not g (the first one on a vCPU always is); `clear g`
on v drops v's current when it is g. `per-vcpu-lru:K` keeps K+1 contexts per vCPU in
most-recently-switched order: exactly an LRU cache of K+1 unit-size objects fed one request per
switch, obj_id = the GPA. So per vCPU:
    hits     = libCacheSim LRU hits
    allocs   = objects in that LRU at the end (a context is allocated per miss until K+1 exist,
               and never freed)
    recycles = misses - allocs;  uncached = 0;  contexts = allocs
The switch sequence is computed here, from the generated events, without the binary.
"""
import random
from collections import defaultdict

import libcachesim as lcs
import pytest

from conftest import replay_json

SEEDS = [1, 2, 3, 5, 8, 13, 21, 34]
KS = [0, 1, 3, 7]
VM_NAMES = ["web0", "db-1", "batch_2", "k8s.node:3"]


def test_libcachesim_lru_counts_objects_not_bytes():
    """The oracle's own premise, worked by hand: LRU of 2 unit objects over a b a c b.
    a miss, b miss, a hit ([a b]), c miss evicts b ([c a]), b miss: 1 hit, 2 objects."""
    cache = lcs.LRU(cache_size=2)
    hits = [cache.get(lcs.Request(obj_size=1, obj_id=o)) for o in (0xA000, 0xB000, 0xA000, 0xC000, 0xB000)]
    assert hits == [False, False, True, False, False]
    assert cache.get_n_obj() == 2


def make_trace(seed):
    """A random native trace: a list of (time_ns, vm, vcpu, op, gpa) and its `# vm` headers."""
    rng = random.Random(seed)
    vms = {}
    shared_pool = None
    for name in rng.sample(VM_NAMES, rng.choice([1, 2, 2, 3, 3])):
        n_vcpus = rng.randint(1, 4)
        declared = rng.random() < 0.5
        # Declared VMs use 0..M-1; undeclared ones may use sparse indices.
        vcpus = list(range(n_vcpus)) if declared else sorted(rng.sample(range(64), n_vcpus))
        if shared_pool is not None and rng.random() < 0.5:
            pool = shared_pool  # the same GPAs in another VM: must not be shared state
        else:
            pool = [g << 12 for g in rng.sample(range(1, 1 << 40), rng.randint(2, 12))]
            shared_pool = pool
        vms[name] = {"vcpus": vcpus, "declared": declared, "pool": pool}

    current = {}
    events = []
    t = rng.randrange(0, 10_000)
    for _ in range(rng.randint(300, 1500)):
        vm = rng.choice(list(vms))
        spec = vms[vm]
        vcpu = rng.choice(spec["vcpus"])
        op = rng.choices(["load", "enter", "clear"], weights=[35, 45, 20])[0]
        cur = current.get((vm, vcpu))
        if cur is not None and rng.random() < 0.35:
            gpa = cur  # no-switch loads/enters, and clears of the current one
        else:
            # Skewed: the first few GPAs are hot, so small caches hit too.
            pool = spec["pool"]
            gpa = pool[min(int(rng.expovariate(0.5)), len(pool) - 1)]
        if op == "clear":
            if cur == gpa:
                current[(vm, vcpu)] = None
        else:
            current[(vm, vcpu)] = gpa
        events.append((t, vm, vcpu, op, gpa))
        t += rng.choice([0, 1, rng.randrange(1, 5000)])  # equal times are allowed

    headers = [f"# vm {vm} l1_vcpus={len(s['vcpus'])} memory_mib={rng.choice([1024, 4096])}"
               for vm, s in vms.items() if s["declared"]]
    return headers, events


def write_trace(path, headers, events):
    lines = ["# nestcache-trace v1", *headers]
    lines += [f"{t} {vm} {vcpu} {op} {gpa:#x}" for t, vm, vcpu, op, gpa in events]
    path.write_text("\n".join(lines) + "\n")


def oracle(events, k):
    """Expected per-VM counters of `per-vcpu-lru:k`, from libCacheSim's LRU (module docstring)."""
    current = {}
    caches = {}
    per_vm = defaultdict(lambda: defaultdict(int))
    for _, vm, vcpu, op, gpa in events:
        c = per_vm[vm]
        c["events"] += 1
        c[{"load": "loads", "enter": "entries", "clear": "clears"}[op]] += 1
        key = (vm, vcpu)
        if op == "clear":
            if current.get(key) == gpa:
                current[key] = None
            continue
        if current.get(key) == gpa:
            continue  # no switch
        current[key] = gpa
        c["switches"] += 1
        cache = caches.get(key)
        if cache is None:
            cache = caches[key] = lcs.LRU(cache_size=k + 1)
        if cache.get(lcs.Request(obj_size=1, obj_id=gpa)):
            c["hits"] += 1
        else:
            c["misses"] += 1
    for (vm, _), cache in caches.items():
        per_vm[vm]["allocs"] += cache.get_n_obj()
    for c in per_vm.values():
        c["recycles"] = c["misses"] - c["allocs"]
        c["uncached"] = 0
        c["contexts"] = c["allocs"]
    return {vm: dict(c) for vm, c in per_vm.items()}


KEYS = ["events", "loads", "entries", "clears", "switches", "hits", "misses", "allocs",
        "recycles", "uncached", "contexts"]


def check(result, expected, what):
    assert set(result["vms"]) == set(expected), f"{what}: VMs {sorted(result['vms'])} != {sorted(expected)}"
    for vm, exp in sorted(expected.items()):
        got = {key: result["vms"][vm].get(key) for key in KEYS}
        want = {key: exp.get(key, 0) for key in KEYS}
        assert got == want, f"{what}: VM {vm}: got {got}\n  expected (libcachesim oracle) {want}"
    got = {key: result["totals"].get(key) for key in KEYS}
    want = {key: sum(exp.get(key, 0) for exp in expected.values()) for key in KEYS}
    assert got == want, f"{what}: totals: got {got}\n  expected (libcachesim oracle) {want}"


@pytest.mark.parametrize("seed", SEEDS)
def test_per_vcpu_lru_matches_libcachesim(nestcache, tmp_path, seed):
    headers, events = make_trace(seed)
    trace = tmp_path / f"oracle-{seed}.trace"
    write_trace(trace, headers, events)
    for k in KS:
        what = f"seed {seed}, per-vcpu-lru:{k}, {len(events)} events"
        expected = oracle(events, k)
        assert sum(c.get("hits", 0) for c in expected.values()) > 0 or k == 0, f"{what}: trace has no hits"
        result = replay_json(nestcache, trace, f"per-vcpu-lru:{k}", context=what)
        assert result["policy"] == f"per-vcpu-lru:{k}", f"{what}: policy {result['policy']!r}"
        check(result, expected, what)


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_single_is_per_vcpu_lru_0(nestcache, tmp_path, seed):
    """DESIGN §3: `single` is exactly `per-vcpu-lru:0` (one context per vCPU)."""
    headers, events = make_trace(seed)
    trace = tmp_path / f"single-{seed}.trace"
    write_trace(trace, headers, events)
    what = f"seed {seed}, single"
    check(replay_json(nestcache, trace, "single", context=what), oracle(events, 0), what)
