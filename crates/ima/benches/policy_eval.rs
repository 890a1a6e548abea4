//! Decisions per second of the compiled IMA policy evaluator on a 200-rule policy,
//! one core. Run through `bench/policy-eval.sh` (or `cargo bench -p vigil-ima --bench
//! policy_eval -- [ROUNDS]`).

use std::hint::black_box;
use std::time::Instant;

use vigil_ima::policy::{
    builtin, magic, parse, Func, LsmLabel, Policy, Request, MAY_EXEC, MAY_READ, MAY_WRITE,
};

/// A 200-rule policy shaped like real ones: the tcb and appraise_tcb exclusions (no
/// func=, so every request walks them), per-filesystem and per-user rules for many
/// hooks, LSM-label exclusions, and the usual measure/appraise rules at the end.
fn policy_200() -> Policy {
    let mut text = String::new();
    let base = builtin::policy(&["tcb", "appraise_tcb"], &builtin::BuiltinConfig::default())
        .expect("built-in policy");
    // the exclusions first (27 rules), the tcb measure rules go to the end
    for r in base.rules.iter().filter(|r| r.fsmagic.is_some()) {
        text += &format!("{r}\n");
    }
    let mut i = 0;
    while text.lines().count() < 189 {
        let uuid = format!("{i:08x}-0000-4000-8000-{:012x}", i * 7919);
        text += &match i % 9 {
            0 => format!("dont_measure fsuuid={uuid}\n"),
            1 => format!("dont_appraise obj_type=cache_{i}_t\n"),
            2 => format!("measure func=BPRM_CHECK fsuuid={uuid} pcr={}\n", 10 + i % 5),
            3 => format!("appraise func=BPRM_CHECK fsuuid={uuid} appraise_type=imasig\n"),
            4 => format!(
                "measure func=MMAP_CHECK mask=MAY_EXEC fowner={} \n",
                2000 + i
            ),
            5 => format!("audit func=FILE_CHECK mask=^MAY_WRITE uid={}\n", 3000 + i),
            6 => format!("dont_measure fsname=fuse fs_subtype=sub{i}\n"),
            7 => format!("measure func=MODULE_CHECK uid<{}\n", 5 + i),
            _ => format!("dont_hash func=FILE_CHECK fgroup={}\n", 4000 + i),
        };
        i += 1;
    }
    text += "measure func=KEY_CHECK keyrings=.ima|.builtin_trusted_keys\n";
    text += "measure func=CRITICAL_DATA label=selinux\n";
    for r in base.rules.iter().filter(|r| r.fsmagic.is_none()) {
        text += &format!("{r}\n");
    }
    while text.lines().count() < 200 {
        text += "measure func=POLICY_CHECK\n";
    }
    let p = parse(&text).expect("benchmark policy parses");
    assert_eq!(p.rules.len(), 200);
    p
}

fn requests() -> Vec<Request<'static>> {
    let user = |func, mask| Request {
        uid: 1000,
        euid: 1000,
        suid: 1000,
        gid: 1000,
        egid: 1000,
        sgid: 1000,
        fowner: 1000,
        fgroup: 1000,
        fsmagic: magic::EXT4,
        fsname: "ext4",
        ..Request::new(func, mask)
    };
    vec![
        // user reads own file on ext4: walks everything, nothing matches but hash/appraise
        user(Func::FileCheck, MAY_READ),
        // user opens O_RDWR
        user(Func::FileCheck, MAY_READ | MAY_WRITE),
        // root executes a root-owned binary
        Request {
            fsmagic: magic::EXT4,
            fsname: "ext4",
            ..Request::new(Func::BprmCheck, MAY_EXEC)
        },
        // shared library mapped executable
        Request {
            fowner: 0,
            ..user(Func::MmapCheck, MAY_EXEC)
        },
        // read on tmpfs and procfs (decided early by the exclusions)
        Request {
            fsmagic: magic::TMPFS,
            fsname: "tmpfs",
            ..user(Func::FileCheck, MAY_READ)
        },
        Request {
            fsmagic: magic::PROC,
            fsname: "proc",
            ..Request::new(Func::FileCheck, MAY_READ)
        },
        // a FUSE mount with a subtype and SELinux labels
        Request {
            fsmagic: magic::FUSE,
            fsname: "fuse",
            fs_subtype: Some("vigil"),
            subj: LsmLabel {
                user: Some("user_u"),
                role: Some("user_r"),
                type_: Some("user_t"),
            },
            obj: LsmLabel {
                user: Some("system_u"),
                role: Some("object_r"),
                type_: Some("usr_t"),
            },
            ..user(Func::FileCheck, MAY_READ)
        },
        // a key added to .ima
        Request {
            func_data: Some(".ima"),
            ..Request::new(Func::KeyCheck, 0)
        },
    ]
}

/// Time this thread has spent on a CPU (ns), from /proc/thread-self/schedstat: on a
/// loaded machine wall time overstates the cost of a decision.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let policy = policy_200();
    let compiled = policy.compile();
    let reqs = requests();
    let per_round = 4_000_000usize;
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        let cpu0 = cpu_ns();
        let mut acc = 0u32;
        for k in 0..per_round {
            let d = compiled.evaluate(black_box(&reqs[k % reqs.len()]));
            acc = acc
                .wrapping_add(d.measure.rule.unwrap_or(7))
                .wrapping_add(d.appraise.act as u32);
        }
        black_box(acc);
        wall.push(per_round as f64 / start.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (cpu0, cpu_ns()) {
            cpu.push(per_round as f64 / ((b.saturating_sub(a)).max(1) as f64 / 1e9));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (wall, cpu) = (median(&mut wall), median(&mut cpu));
    // the request that walks furthest (a user's read on ext4), alone
    let worst = &reqs[0];
    let cpu0 = cpu_ns();
    for _ in 0..per_round {
        black_box(compiled.evaluate(black_box(worst)));
    }
    let worst_cpu = match (cpu0, cpu_ns()) {
        (Some(a), Some(b)) => per_round as f64 / ((b.saturating_sub(a)).max(1) as f64 / 1e9),
        _ => 0.0,
    };
    // the same requests through the plain rule-by-rule walk (the kernel's algorithm)
    let cpu0 = cpu_ns();
    let walk_rounds = per_round / 4;
    for k in 0..walk_rounds {
        black_box(compiled.evaluate_reference(black_box(&reqs[k % reqs.len()])));
    }
    let walk_cpu = match (cpu0, cpu_ns()) {
        (Some(a), Some(b)) => walk_rounds as f64 / ((b.saturating_sub(a)).max(1) as f64 / 1e9),
        _ => 0.0,
    };
    println!("rules: {}", policy.rules.len());
    println!(
        "mixed requests: median {:.2} M decisions per CPU-second ({:.2} M/s wall clock) over {rounds} rounds",
        cpu / 1e6,
        wall / 1e6
    );
    println!(
        "slowest request (user read on ext4): {:.2} M decisions per CPU-second",
        worst_cpu / 1e6
    );
    println!(
        "rule-by-rule walk (the kernel's algorithm): {:.2} M decisions per CPU-second; index/walk ratio {:.1}",
        walk_cpu / 1e6,
        cpu / walk_cpu.max(1.0)
    );
    println!("target 5 M decisions/s on one core: ratio {:.2}", cpu / 5e6);
}
